// Package inventory is the inventory bounded context's domain: stock per
// product (event-sourced) and reservations per order. It is plain Go.
//
// Stock keeps, per product, what is on hand and which orders hold part of
// it. Reserving, releasing and committing are idempotent per order, and a
// release that arrives before its reservation leaves a tombstone, so a
// late reservation for that order is refused instead of holding stock
// forever. Available stock is on hand minus reserved, and a reservation
// never takes it below zero: concurrent orders for the last unit are
// serialised by the stream's expected version, so exactly one wins.
//
// Reservation records, per order, the outcome of reserving all its items
// (Reserved, or Rejected with a reason), then Released or Committed. The
// outcome is written once the stock streams have decided, with the lines,
// so reserving one product costs two appends (the hold, the outcome). A
// crash between them leaves holds no reservation names; that is safe
// because whoever releases an order passes the lines it knows of, and a
// reservation that finds its order released gives its own lines back.
package inventory

import (
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/idmap"
)

// MaxQuantity bounds a restock or an order line.
const MaxQuantity = 1_000_000_000

// HoldState is where an order's hold on one product stands.
type HoldState string

// Hold states.
const (
	HoldReserved  HoldState = "reserved"
	HoldCommitted HoldState = "committed"
	HoldReleased  HoldState = "released"
)

// Hold is one order's claim on a product's stock.
type Hold struct {
	// Quantity is how many units the order holds (0 for a tombstone).
	Quantity int64 `json:"quantity"`
	// State is reserved, committed or released.
	State HoldState `json:"state"`
	// At is when the hold reached its state.
	At time.Time `json:"at,omitzero"`
}

// HoldRetention is how long a committed or released hold is remembered.
// Within it, a redelivered reserve, release or commit for the order finds
// the hold and does nothing twice; past it, the hold is forgotten so that
// a product's state does not grow with every order it ever had. The
// order's reservation (kept for good) still refuses a late reservation of
// a released order and makes a repeated commit do nothing.
const HoldRetention = 24 * time.Hour

// minPrune is the number of holds below which none are forgotten.
const minPrune = 1024

// Stock is the state of one product's stock.
type Stock struct {
	// ProductID identifies the product (stream "stock-" + ProductID).
	ProductID string `json:"product_id"`
	// OnHand counts units in the warehouse, reserved ones included.
	OnHand int64 `json:"on_hand"`
	// Reserved counts units held for orders not yet committed.
	Reserved int64 `json:"reserved"`
	// Holds are the orders' claims, by order ID. Evolve updates it in place.
	Holds Holds `json:"holds,omitzero"`
	// PruneAt is the number of holds at which Evolve next forgets those
	// that ended more than HoldRetention before the event it applies
	// (twice the number left by the last pruning, at least minPrune): the
	// cost of pruning is spread over the holds added in between, and the
	// state stays a function of the events alone.
	PruneAt int `json:"prune_at,omitempty"`
}

// Holds are a product's holds by order ID. A product's stock is cached in
// memory and keeps every hold for HoldRetention, hundreds of thousands of
// them on a busy day: each is kept in about 40 bytes with no pointer for
// the garbage collector to scan (package idmap), instead of the 130 bytes
// of a map[string]Hold. Its JSON is that of a map[string]Hold. Copies
// share the holds, as copies of a map do.
type Holds struct{ m idmap.Map[packedHold] }

// packedHold is a Hold without pointers: its state as a number, its time
// as Unix nanoseconds (noTime for none).
type packedHold struct {
	quantity int64
	at       int64
	state    uint8
}

// noTime stands for the zero time in a packedHold.
const noTime = math.MinInt64

// packedReserved is HoldReserved's number in holdStates.
const packedReserved = 1

// holdStates numbers the hold states (0 is none).
var holdStates = [...]HoldState{0: "", packedReserved: HoldReserved, 2: HoldCommitted, 3: HoldReleased}

func pack(h Hold) (packedHold, error) {
	p := packedHold{quantity: h.Quantity, at: noTime}
	if !h.At.IsZero() {
		p.at = h.At.UnixNano()
	}
	for i, st := range holdStates {
		if st == h.State {
			p.state = uint8(i)
			return p, nil
		}
	}
	return p, fmt.Errorf("inventory: unknown hold state %q", h.State)
}

func (p packedHold) hold() Hold {
	h := Hold{Quantity: p.quantity, State: holdStates[p.state]}
	if p.at != noTime {
		h.At = time.Unix(0, p.at).UTC()
	}
	return h
}

// MarshalJSON encodes the hold as a Hold.
func (p packedHold) MarshalJSON() ([]byte, error) { return json.Marshal(p.hold()) }

// UnmarshalJSON decodes a Hold.
func (p *packedHold) UnmarshalJSON(b []byte) error {
	var h Hold
	if err := json.Unmarshal(b, &h); err != nil {
		return err
	}
	var err error
	*p, err = pack(h)
	return err
}

// Get returns order's hold.
func (hs Holds) Get(order string) (Hold, bool) {
	p, ok := hs.m.Get(order)
	return p.hold(), ok
}

// Len is the number of holds.
func (hs Holds) Len() int { return hs.m.Len() }

// IsZero reports whether there are no holds.
func (hs Holds) IsZero() bool { return hs.m.IsZero() }

// All yields every order's hold, in no particular order.
func (hs Holds) All() iter.Seq2[string, Hold] {
	return func(yield func(string, Hold) bool) {
		for k, p := range hs.m.All() {
			if !yield(k, p.hold()) {
				return
			}
		}
	}
}

// set records order's hold; h's state is one of the hold states.
func (hs *Holds) set(order string, h Hold) {
	p, err := pack(h)
	if err != nil {
		panic(err) // Evolve sets only the states above
	}
	hs.m.Set(order, p)
}

// MarshalJSON encodes the holds as a JSON object by order ID.
func (hs Holds) MarshalJSON() ([]byte, error) { return hs.m.MarshalJSON() }

// UnmarshalJSON decodes a JSON object of holds by order ID.
func (hs *Holds) UnmarshalJSON(b []byte) error { return hs.m.UnmarshalJSON(b) }

// Available is what can still be reserved.
func (s Stock) Available() int64 { return s.OnHand - s.Reserved }

// Errors.
var (
	// ErrOutOfStock reports a reservation larger than what is available.
	ErrOutOfStock = errs.Rule(inventoryapi.ReasonOutOfStock, "not enough stock is available")
	// ErrReservationClosed reports reserving for an order whose hold was released.
	ErrReservationClosed = errs.Rule(inventoryapi.ReasonReservationClosed, "the order's reservation was released")
	// ErrNoReservation reports committing an order that holds nothing.
	ErrNoReservation = errs.Rule("no_reservation", "the order holds no reservation")
	// ErrBadQuantity reports a quantity out of range.
	ErrBadQuantity = &errs.Error{Code: errs.Unprocessable, Reason: "invalid_quantity", Message: "quantity must be between 1 and 1000000000",
		Fields: []errs.FieldError{{Field: "quantity", Message: "must be between 1 and 1000000000"}}}
	// ErrTooMuchStock reports a restock that would overflow.
	ErrTooMuchStock = &errs.Error{Code: errs.Unprocessable, Reason: "quantity_overflow", Message: "on-hand stock would exceed its limit"}
)

// Event is an inventory domain event.
type Event interface {
	// EventType is the stored type name.
	EventType() string
}

// StockRestocked adds units on hand.
type StockRestocked struct {
	ProductID string    `json:"product_id"`
	Quantity  int64     `json:"quantity"`
	At        time.Time `json:"at"`
}

// StockReserved holds units for an order.
type StockReserved struct {
	ProductID string    `json:"product_id"`
	OrderID   string    `json:"order_id"`
	Quantity  int64     `json:"quantity"`
	At        time.Time `json:"at"`
}

// StockReleased gives an order's units back (Quantity 0: a tombstone).
type StockReleased struct {
	ProductID string    `json:"product_id"`
	OrderID   string    `json:"order_id"`
	Quantity  int64     `json:"quantity"`
	At        time.Time `json:"at"`
}

// StockCommitted ships an order's units: they leave on-hand stock.
type StockCommitted struct {
	ProductID string    `json:"product_id"`
	OrderID   string    `json:"order_id"`
	Quantity  int64     `json:"quantity"`
	At        time.Time `json:"at"`
}

// EventType implements Event.
func (StockRestocked) EventType() string { return "inventory.StockRestocked" }

// EventType implements Event.
func (StockReserved) EventType() string { return "inventory.StockReserved" }

// EventType implements Event.
func (StockReleased) EventType() string { return "inventory.StockReleased" }

// EventType implements Event.
func (StockCommitted) EventType() string { return "inventory.StockCommitted" }

// EvolveStock returns the stock after e.
func EvolveStock(s Stock, e Event) Stock {
	hold := func(order string, h Hold) {
		s.Holds.set(order, h)
		if s.Holds.Len() >= max(s.PruneAt, minPrune) {
			s.prune(h.At.Add(-HoldRetention))
		}
	}
	switch e := e.(type) {
	case StockRestocked:
		s.ProductID = e.ProductID
		s.OnHand += e.Quantity
	case StockReserved:
		s.ProductID = e.ProductID
		s.Reserved += e.Quantity
		hold(e.OrderID, Hold{Quantity: e.Quantity, State: HoldReserved, At: e.At})
	case StockReleased:
		s.ProductID = e.ProductID
		s.Reserved -= e.Quantity
		hold(e.OrderID, Hold{Quantity: e.Quantity, State: HoldReleased, At: e.At})
	case StockCommitted:
		s.Reserved -= e.Quantity
		s.OnHand -= e.Quantity
		hold(e.OrderID, Hold{Quantity: e.Quantity, State: HoldCommitted, At: e.At})
	}
	return s
}

// prune forgets the committed and released holds that ended before
// cutoff; reserved holds stay until they end.
func (s *Stock) prune(cutoff time.Time) {
	c := cutoff.UnixNano()
	s.Holds.m.DeleteFunc(func(p packedHold) bool { return p.state != packedReserved && p.at < c })
	s.PruneAt = 2 * s.Holds.Len()
}

// Restock decides adding qty units on hand.
func (s Stock) Restock(product string, qty int64, now time.Time) ([]Event, error) {
	if qty <= 0 || qty > MaxQuantity {
		return nil, ErrBadQuantity
	}
	if s.OnHand > MaxQuantity*1000-qty {
		return nil, ErrTooMuchStock
	}
	return []Event{StockRestocked{ProductID: product, Quantity: qty, At: now.UTC()}}, nil
}

// Reserve decides holding qty units for order.
func (s Stock) Reserve(product, order string, qty int64, now time.Time) ([]Event, error) {
	if qty <= 0 || qty > MaxQuantity {
		return nil, ErrBadQuantity
	}
	if h, ok := s.Holds.Get(order); ok {
		if h.State == HoldReleased {
			return nil, ErrReservationClosed
		}
		return nil, nil // held already
	}
	if qty > s.Available() {
		return nil, ErrOutOfStock
	}
	return []Event{StockReserved{ProductID: product, OrderID: order, Quantity: qty, At: now.UTC()}}, nil
}

// Release decides giving order's units back; with no hold it leaves a tombstone.
func (s Stock) Release(product, order string, now time.Time) ([]Event, error) {
	h, ok := s.Holds.Get(order)
	switch {
	case !ok:
		return []Event{StockReleased{ProductID: product, OrderID: order, At: now.UTC()}}, nil
	case h.State == HoldReserved:
		return []Event{StockReleased{ProductID: product, OrderID: order, Quantity: h.Quantity, At: now.UTC()}}, nil
	}
	return nil, nil
}

// Commit decides that order's held units leave the warehouse.
func (s Stock) Commit(product, order string, now time.Time) ([]Event, error) {
	h, ok := s.Holds.Get(order)
	switch {
	case ok && h.State == HoldReserved:
		return []Event{StockCommitted{ProductID: product, OrderID: order, Quantity: h.Quantity, At: now.UTC()}}, nil
	case ok && h.State == HoldCommitted:
		return nil, nil
	}
	return nil, ErrNoReservation
}

// Line is one product and quantity of an order.
type Line struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// ReservationStatus is where an order's reservation stands.
type ReservationStatus string

// Reservation statuses.
const (
	ReservationNone      ReservationStatus = ""
	ReservationPending   ReservationStatus = "Requested"
	ReservationReserved  ReservationStatus = "Reserved"
	ReservationRejected  ReservationStatus = "Rejected"
	ReservationReleased  ReservationStatus = "Released"
	ReservationCommitted ReservationStatus = "Committed"
)

// Reservation is the state of one order's reservation.
type Reservation struct {
	OrderID string            `json:"order_id"`
	Lines   []Line            `json:"lines,omitempty"`
	Status  ReservationStatus `json:"status"`
	Reason  string            `json:"reason,omitempty"`
}

// ReservationRequested started reserving an order's lines. It is no
// longer written (the outcome carries the lines); streams recorded before
// still replay it.
type ReservationRequested struct {
	OrderID string    `json:"order_id"`
	Lines   []Line    `json:"lines"`
	At      time.Time `json:"at"`
}

// OrderStockReserved: every line of the order is held.
type OrderStockReserved struct {
	OrderID string    `json:"order_id"`
	Lines   []Line    `json:"lines,omitempty"`
	At      time.Time `json:"at"`
}

// OrderStockRejected: the order could not be held (nothing stays held).
type OrderStockRejected struct {
	OrderID string    `json:"order_id"`
	Lines   []Line    `json:"lines,omitempty"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// OrderStockReleased: the order's holds are given back (or will be refused).
type OrderStockReleased struct {
	OrderID string    `json:"order_id"`
	Lines   []Line    `json:"lines,omitempty"`
	At      time.Time `json:"at"`
}

// OrderStockCommitted: the order's units left the warehouse.
type OrderStockCommitted struct {
	OrderID string    `json:"order_id"`
	At      time.Time `json:"at"`
}

// EventType implements Event.
func (ReservationRequested) EventType() string { return "inventory.ReservationRequested" }

// EventType implements Event.
func (OrderStockReserved) EventType() string { return "inventory.OrderStockReserved" }

// EventType implements Event.
func (OrderStockRejected) EventType() string { return "inventory.OrderStockRejected" }

// EventType implements Event.
func (OrderStockReleased) EventType() string { return "inventory.OrderStockReleased" }

// EventType implements Event.
func (OrderStockCommitted) EventType() string { return "inventory.OrderStockCommitted" }

// EvolveReservation returns the reservation after e.
func EvolveReservation(r Reservation, e Event) Reservation {
	switch e := e.(type) {
	case ReservationRequested:
		r.OrderID, r.Lines, r.Status = e.OrderID, e.Lines, ReservationPending
	case OrderStockReserved:
		r.OrderID, r.Status = e.OrderID, ReservationReserved
		r.Lines = keepLines(r.Lines, e.Lines)
	case OrderStockRejected:
		r.OrderID, r.Status, r.Reason = e.OrderID, ReservationRejected, e.Reason
		r.Lines = keepLines(r.Lines, e.Lines)
	case OrderStockReleased:
		r.OrderID, r.Status = e.OrderID, ReservationReleased
		r.Lines = keepLines(r.Lines, e.Lines)
	case OrderStockCommitted:
		r.OrderID, r.Status = e.OrderID, ReservationCommitted
	}
	return r
}

// keepLines is an event's lines, or the ones known before when it has
// none (events recorded before outcomes carried their lines).
func keepLines(before, now []Line) []Line {
	if len(now) > 0 {
		return now
	}
	return before
}
