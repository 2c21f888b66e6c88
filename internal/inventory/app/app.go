// Package app is the inventory context's application layer: stock and
// reservation commands on the event store, and the mapping of its domain
// events to the published language (inventoryapi).
package app

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

var codec = func() *aggregate.Codec[inventory.Event] {
	c := aggregate.NewCodec[inventory.Event]()
	aggregate.Register[inventory.StockRestocked](c)
	aggregate.Register[inventory.StockReserved](c)
	aggregate.Register[inventory.StockReleased](c)
	aggregate.Register[inventory.StockCommitted](c)
	aggregate.Register[inventory.ReservationRequested](c)
	aggregate.Register[inventory.OrderStockReserved](c)
	aggregate.Register[inventory.OrderStockRejected](c)
	aggregate.Register[inventory.OrderStockReleased](c)
	aggregate.Register[inventory.OrderStockCommitted](c)
	return c
}()

// Stream prefixes.
const (
	StockPrefix       = "stock"
	ReservationPrefix = "reservation"
)

// StockType describes the Stock aggregate.
func StockType() aggregate.Type[inventory.Stock, inventory.Event] {
	return aggregate.Type[inventory.Stock, inventory.Event]{
		Name: StockPrefix, Initial: func() inventory.Stock { return inventory.Stock{} },
		Evolve: inventory.EvolveStock, Encode: codec.Encode, Decode: codec.Decode,
		SnapshotEvery: 200, StateVersion: 1,
	}
}

// ReservationType describes the Reservation aggregate.
func ReservationType() aggregate.Type[inventory.Reservation, inventory.Event] {
	return aggregate.Type[inventory.Reservation, inventory.Event]{
		Name: ReservationPrefix, Initial: func() inventory.Reservation { return inventory.Reservation{} },
		Evolve: inventory.EvolveReservation, Encode: codec.Encode, Decode: codec.Decode,
	}
}

// Decode decodes an inventory record (for mappers and projections).
func Decode(r eventstore.Record) (inventory.Event, error) { return codec.Decode(r) }

// Service runs inventory commands.
type Service struct {
	stock *aggregate.Repository[inventory.Stock, inventory.Event]
	res   *aggregate.Repository[inventory.Reservation, inventory.Event]
	now   func() time.Time
}

// NewService returns a Service on store.
func NewService(store eventstore.Store) *Service {
	return &Service{
		stock: aggregate.NewRepository(store, StockType(), aggregate.WithCache(8192), aggregate.WithRetries(50)),
		res:   aggregate.NewRepository(store, ReservationType(), aggregate.WithCache(16384), aggregate.AssumeNew()),
		now:   time.Now,
	}
}

// Level is a product's stock as the API shows it.
type Level struct {
	ProductID string `json:"product_id"`
	OnHand    int64  `json:"on_hand"`
	Reserved  int64  `json:"reserved"`
	Available int64  `json:"available"`
}

// ErrUnknownProduct reports a product with no stock history.
var ErrUnknownProduct = &errs.Error{Code: errs.NotFound, Reason: "product_not_found", Message: "no stock has been recorded for this product"}

// Get returns product id's stock level.
func (s *Service) Get(ctx context.Context, id string) (Level, uint64, error) {
	l, err := s.stock.Load(ctx, id)
	if err != nil {
		return Level{}, 0, err
	}
	if l.Version == 0 {
		return Level{}, 0, ErrUnknownProduct
	}
	return Level{ProductID: id, OnHand: l.State.OnHand, Reserved: l.State.Reserved, Available: l.State.Available()}, l.Version, nil
}

// Restock adds qty units of product id and returns the new level and the
// event's position.
func (s *Service) Restock(ctx context.Context, meta eventstore.Metadata, id string, qty int64) (Level, uint64, error) {
	res, err := s.stock.Handle(ctx, id, meta, func(l aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
		return l.State.Restock(id, qty, s.now())
	})
	if err != nil {
		return Level{}, 0, err
	}
	st := res.State
	return Level{ProductID: id, OnHand: st.OnHand, Reserved: st.Reserved, Available: st.Available()}, res.Append.LastPosition, nil
}

// normalize merges lines of one product and sorts them, so that every
// reservation takes product locks in the same order.
func normalize(lines []inventory.Line) []inventory.Line {
	m := map[string]int64{}
	for _, l := range lines {
		m[l.ProductID] += l.Quantity
	}
	out := make([]inventory.Line, 0, len(m))
	for p, q := range m {
		out = append(out, inventory.Line{ProductID: p, Quantity: q})
	}
	slices.SortFunc(out, func(a, b inventory.Line) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return out
}

// Reserve holds every line of order, or none: it returns
// inventory.ErrOutOfStock (nothing stays held) or ErrReservationClosed
// (the order was released first). It is idempotent.
func (s *Service) Reserve(ctx context.Context, meta eventstore.Metadata, order string, lines []inventory.Line) error {
	var status inventory.ReservationStatus
	var reason string
	res, err := s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		status, reason = l.State.Status, l.State.Reason
		if status == inventory.ReservationNone {
			return []inventory.Event{inventory.ReservationRequested{OrderID: order, Lines: normalize(lines), At: s.now().UTC()}}, nil
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	switch status {
	case inventory.ReservationReserved, inventory.ReservationCommitted:
		return nil
	case inventory.ReservationRejected:
		return rejected(reason)
	case inventory.ReservationReleased:
		return inventory.ErrReservationClosed
	}
	lines = res.State.Lines
	var failure error
	for _, ln := range lines {
		_, err := s.stock.Handle(ctx, ln.ProductID, meta, func(l aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return l.State.Reserve(ln.ProductID, order, ln.Quantity, s.now())
		})
		if errors.Is(err, inventory.ErrOutOfStock) || errors.Is(err, inventory.ErrReservationClosed) {
			failure = err
			break
		}
		if err != nil {
			return err
		}
	}
	if failure != nil {
		if err := s.releaseLines(ctx, meta, order, lines); err != nil {
			return err
		}
		// A product refused: out of stock, or it holds a tombstone for
		// this order. The tombstone is either a cancellation's (which
		// marks the reservation Released first) or our own from an earlier
		// attempt that was refused and crashed before recording it —
		// which was out of stock.
		var after inventory.Reservation
		_, err := s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
			after = l.State
			if l.State.Status != inventory.ReservationPending {
				return nil, nil
			}
			after.Status, after.Reason = inventory.ReservationRejected, errs.ReasonOf(inventory.ErrOutOfStock)
			return []inventory.Event{inventory.OrderStockRejected{OrderID: order, Reason: after.Reason, At: s.now().UTC()}}, nil
		})
		if err != nil {
			return err
		}
		switch after.Status {
		case inventory.ReservationRejected:
			return rejected(after.Reason)
		case inventory.ReservationCommitted, inventory.ReservationReserved:
			return nil
		}
		return inventory.ErrReservationClosed
	}
	var after inventory.ReservationStatus
	_, err = s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		after = l.State.Status
		if after != inventory.ReservationPending {
			return nil, nil
		}
		after = inventory.ReservationReserved
		return []inventory.Event{inventory.OrderStockReserved{OrderID: order, At: s.now().UTC()}}, nil
	})
	if err != nil {
		return err
	}
	if after == inventory.ReservationReleased {
		return inventory.ErrReservationClosed
	}
	return nil
}

func rejected(reason string) error {
	if reason == errs.ReasonOf(inventory.ErrReservationClosed) {
		return inventory.ErrReservationClosed
	}
	return inventory.ErrOutOfStock
}

func (s *Service) releaseLines(ctx context.Context, meta eventstore.Metadata, order string, lines []inventory.Line) error {
	for _, ln := range lines {
		_, err := s.stock.Handle(ctx, ln.ProductID, meta, func(l aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return l.State.Release(ln.ProductID, order, s.now())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Release gives back whatever order holds, and makes a later Reserve for
// it fail. Releasing a committed order does nothing. It is idempotent.
func (s *Service) Release(ctx context.Context, meta eventstore.Metadata, order string) error {
	var st inventory.Reservation
	_, err := s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		st = l.State
		switch st.Status {
		case inventory.ReservationCommitted, inventory.ReservationReleased:
			return nil, nil
		}
		return []inventory.Event{inventory.OrderStockReleased{OrderID: order, At: s.now().UTC()}}, nil
	})
	if err != nil || st.Status == inventory.ReservationCommitted {
		return err
	}
	return s.releaseLines(ctx, meta, order, st.Lines)
}

// Commit takes a reserved order's units out of stock (the order shipped).
func (s *Service) Commit(ctx context.Context, meta eventstore.Metadata, order string) error {
	l, err := s.res.Current(ctx, order)
	if err != nil {
		return err
	}
	switch l.State.Status {
	case inventory.ReservationCommitted:
		return nil
	case inventory.ReservationReserved:
	default:
		return inventory.ErrNoReservation
	}
	for _, ln := range l.State.Lines {
		_, err := s.stock.Handle(ctx, ln.ProductID, meta, func(st aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return st.State.Commit(ln.ProductID, order, s.now())
		})
		if err != nil {
			return err
		}
	}
	_, err = s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		if l.State.Status != inventory.ReservationReserved {
			return nil, nil
		}
		return []inventory.Event{inventory.OrderStockCommitted{OrderID: order, At: s.now().UTC()}}, nil
	})
	return err
}

// IsStockStream reports whether stream is a product's stock, and which.
func IsStockStream(stream string) (string, bool) { return strings.CutPrefix(stream, StockPrefix+"-") }
