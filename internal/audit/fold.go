package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/inventory"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/ordering"
	ordapp "github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/payments"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/shipping"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
)

// facts is what one pass over the log establishes, each stream folded
// with its context's own Evolve.
type facts struct {
	head      uint64
	accounts  map[string]*account
	transfers map[string]*transfer
	orders    map[string]ordering.Order
	stock     map[string]inventory.Stock
	reserved  map[string]inventory.Reservation
	shipments map[string]shipping.Shipment
}

// account is an account's stream folded: to its end, and to the version
// its read-model row reflects.
type account struct {
	state   payments.Account
	version uint64
	// at is the fold at the row's version (row: a row exists; reached:
	// the stream has that version).
	row, reached bool
	rowVersion   uint64
	at           payments.Account
	// in and out are the money the stream put in and took out up to the
	// row's version (to its end without a row).
	in, out int64
	// behindAt is when the first event after the row's version was
	// recorded (zero: none).
	behindAt time.Time
	openedAt time.Time
}

// transfer is one transfer key's legs, over every account.
type transfer struct {
	reference                            string
	currency                             string
	debited, credited, refunded, reverse int64
	accounts                             []string
	tenants                              []string
	last                                 time.Time
}

// netOut is what left the source and was not given back; netIn what
// reached the target and was not taken back.
func (t *transfer) netOut() int64 { return t.debited - t.refunded }
func (t *transfer) netIn() int64  { return t.credited - t.reverse }

// readBatch is how many events one read of the log takes.
const readBatch = 2048

// fold reads each log up to its head and folds every stream the checks
// need; rows are the payments read model, read before. The facts' head
// is the sum of the logs' heads.
func fold(ctx context.Context, logs []Log, rows map[string]readmodel.Summary) (*facts, error) {
	f := &facts{accounts: map[string]*account{}, transfers: map[string]*transfer{}, orders: map[string]ordering.Order{},
		stock: map[string]inventory.Stock{}, reserved: map[string]inventory.Reservation{}, shipments: map[string]shipping.Shipment{}}
	for id, r := range rows {
		f.accounts[id] = &account{row: true, rowVersion: r.Version}
	}
	for _, log := range logs {
		head, err := log.Head(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit: log head: %w", err)
		}
		f.head += head
		for after := uint64(0); after < head; {
			recs, err := log.ReadAll(ctx, after, readBatch)
			if err != nil {
				return nil, fmt.Errorf("audit: read the log after %d: %w", after, err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if r.Position > head {
					break
				}
				if err := f.add(r); err != nil {
					return nil, fmt.Errorf("audit: %s v%d (position %d): %w", r.StreamID, r.Version, r.Position, err)
				}
			}
			after = recs[len(recs)-1].Position
		}
	}
	return f, nil
}

// add folds one record into the facts.
func (f *facts) add(r eventstore.Record) error {
	stream := r.StreamID
	switch {
	case strings.HasPrefix(stream, payapp.StreamPrefix+"-"):
		id, _ := payapp.IsAccountStream(stream)
		e, err := payapp.Decode(r)
		if err != nil {
			return err
		}
		f.addAccount(id, r, e)
	case strings.HasPrefix(stream, ordapp.StreamPrefix+"-"):
		id, _ := ordapp.IsOrderStream(stream)
		e, err := ordapp.Decode(r)
		if err != nil {
			return err
		}
		f.orders[id] = ordering.Evolve(f.orders[id], e)
	case strings.HasPrefix(stream, invapp.StockPrefix+"-"):
		id, _ := invapp.IsStockStream(stream)
		e, err := invapp.Decode(r)
		if err != nil {
			return err
		}
		f.stock[id] = inventory.EvolveStock(f.stock[id], e)
	case strings.HasPrefix(stream, invapp.ReservationPrefix+"-"):
		id := strings.TrimPrefix(stream, invapp.ReservationPrefix+"-")
		e, err := invapp.Decode(r)
		if err != nil {
			return err
		}
		f.reserved[id] = inventory.EvolveReservation(f.reserved[id], e)
	case strings.HasPrefix(stream, shipmentPrefix):
		id := strings.TrimPrefix(stream, shipmentPrefix)
		e, err := shipapp.ShipmentType().Decode(r)
		if err != nil {
			return err
		}
		f.shipments[id] = shipping.Evolve(f.shipments[id], e)
	}
	return nil
}

// shipmentPrefix begins a shipment's stream.
var shipmentPrefix = shipapp.ShipmentType().Name + "-"

// addAccount folds a payments event into its account and its transfer.
func (f *facts) addAccount(id string, r eventstore.Record, e payments.Event) {
	a := f.accounts[id]
	if a == nil {
		a = &account{}
		f.accounts[id] = a
	}
	a.state = payments.Evolve(a.state, e)
	a.version = r.Version
	counted := !a.row || r.Version <= a.rowVersion
	if a.row && r.Version == a.rowVersion {
		a.reached, a.at = true, a.state
	}
	if a.row && r.Version == a.rowVersion+1 {
		a.behindAt = r.RecordedAt
	}
	leg := func(l payments.TransferLeg) *transfer {
		t := f.transfer(l.Key)
		if t.reference == "" {
			t.reference, t.currency = l.Reference, l.Amount.Currency.Code()
		}
		t.accounts = append(t.accounts, id)
		t.tenants = append(t.tenants, a.state.Tenant)
		t.last = l.At
		return t
	}
	var in, out int64
	switch e := e.(type) {
	case payments.AccountOpened:
		in, a.openedAt = e.InitialBalance, e.At
	case payments.MoneyDeposited:
		in = e.Amount.Amount
	case payments.MoneyWithdrawn:
		out = e.Amount.Amount
	case payments.TransferDebited:
		out = e.Amount.Amount
		leg(payments.TransferLeg(e)).debited += e.Amount.Amount
	case payments.TransferCredited:
		in = e.Amount.Amount
		leg(payments.TransferLeg(e)).credited += e.Amount.Amount
	case payments.TransferRefunded:
		in = e.Amount.Amount
		leg(payments.TransferLeg(e)).refunded += e.Amount.Amount
	case payments.TransferReversed:
		out = e.Amount.Amount
		leg(payments.TransferLeg(e)).reverse += e.Amount.Amount
	}
	if counted {
		a.in += in
		a.out += out
	}
}

// transfer returns key's transfer, made if new.
func (f *facts) transfer(key string) *transfer {
	t := f.transfers[key]
	if t == nil {
		t = &transfer{}
		f.transfers[key] = t
	}
	return t
}
