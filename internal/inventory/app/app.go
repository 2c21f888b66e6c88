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
	"sync"
	"time"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
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
		SnapshotEvery: 200, StateVersion: 2, // 2: holds carry their time and are pruned
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

	seenMu sync.Mutex
	seen   map[string]seenLevel // product → the newest level this process saw
}

// seenLevel is a level at a stock stream's version.
type seenLevel struct {
	Level
	version uint64
}

// NewService returns a Service on store.
func NewService(store eventstore.Store) *Service {
	return &Service{
		stock: aggregate.NewRepository(store, StockType(), aggregate.WithCache(8192), aggregate.WithRetries(50)),
		res:   aggregate.NewRepository(store, ReservationType(), aggregate.WithCache(16384), aggregate.AssumeNew()),
		now:   time.Now,
		seen:  map[string]seenLevel{},
	}
}

// maxSeen bounds the levels Seen remembers.
const maxSeen = 100_000

// note remembers product id's level at version v, unless a newer one is
// known.
func (s *Service) note(id string, st inventory.Stock, v uint64) {
	if v == 0 {
		return
	}
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if old, ok := s.seen[id]; ok && old.version >= v {
		return
	}
	if len(s.seen) >= maxSeen {
		clear(s.seen)
	}
	s.seen[id] = seenLevel{Level: Level{ProductID: id, OnHand: st.OnHand, Reserved: st.Reserved, Available: st.Available()}, version: v}
}

// Seen returns the levels of ids as this process last saw them (written
// or read), loading those it has not seen; a product with no stock
// recorded has a zero level. It may lag what other processes wrote: it
// is for advice (the gateway's order check), never for a decision.
func (s *Service) Seen(ctx context.Context, ids []string) ([]Level, error) {
	out := make([]Level, len(ids))
	for i, id := range ids {
		s.seenMu.Lock()
		l, ok := s.seen[id]
		s.seenMu.Unlock()
		if ok {
			out[i] = l.Level
			continue
		}
		lvl, _, err := s.Get(ctx, id)
		if errors.Is(err, ErrUnknownProduct) {
			lvl, err = Level{ProductID: id}, nil
		}
		if err != nil {
			return nil, err
		}
		out[i] = lvl
	}
	return out, nil
}

// Level is a product's stock as the API shows it.
type Level = inventoryapi.Level

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
	s.note(id, l.State, l.Version)
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
	s.note(id, st, res.Version)
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
//
// Each product's stock decides its hold first; then the outcome is
// recorded on the order's reservation with the lines: for one product,
// two appends. A crash before the outcome leaves holds that a retry finds
// and keeps. A release that came first (recorded before it touches any
// stock) is seen either by a product's tombstone or when recording the
// outcome; then every line is given back here, since that release may
// not have known them.
func (s *Service) Reserve(ctx context.Context, meta eventstore.Metadata, order string, lines []inventory.Line) error {
	lines = normalize(lines)
	cur, err := s.res.Current(ctx, order)
	if err != nil {
		return err
	}
	switch cur.State.Status {
	case inventory.ReservationReserved, inventory.ReservationCommitted:
		return nil
	case inventory.ReservationRejected:
		return rejected(cur.State.Reason)
	case inventory.ReservationReleased:
		return s.closed(ctx, meta, order, lines)
	case inventory.ReservationPending:
		lines = cur.State.Lines // requested by an earlier version: keep its lines
	}
	var failure error
	for _, ln := range lines {
		res, err := s.stock.Handle(ctx, ln.ProductID, meta, func(l aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return l.State.Reserve(ln.ProductID, order, ln.Quantity, s.now())
		})
		s.note(ln.ProductID, res.State, res.Version)
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
	}
	// Record the outcome. A product refused: out of stock, or it holds a
	// tombstone for this order — a release's (which records Released
	// first, seen here) or our own from an earlier attempt that was
	// refused and crashed before recording it, which was out of stock.
	var after inventory.Reservation
	_, err = s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		after = l.State
		if st := l.State.Status; st != inventory.ReservationNone && st != inventory.ReservationPending {
			return nil, nil
		}
		now := s.now().UTC()
		if failure != nil {
			after.Status, after.Reason = inventory.ReservationRejected, errs.ReasonOf(inventory.ErrOutOfStock)
			return []inventory.Event{inventory.OrderStockRejected{OrderID: order, Lines: lines, Reason: after.Reason, At: now}}, nil
		}
		after.Status = inventory.ReservationReserved
		return []inventory.Event{inventory.OrderStockReserved{OrderID: order, Lines: lines, At: now}}, nil
	})
	if err != nil {
		return err
	}
	switch after.Status {
	case inventory.ReservationReserved, inventory.ReservationCommitted:
		return nil
	case inventory.ReservationRejected:
		return rejected(after.Reason)
	}
	return s.closed(ctx, meta, order, lines)
}

// closed answers a reservation of an order that was released: lines are
// given back (the release may not have known them) and the reservation
// is refused.
func (s *Service) closed(ctx context.Context, meta eventstore.Metadata, order string, lines []inventory.Line) error {
	if err := s.releaseLines(ctx, meta, order, lines); err != nil {
		return err
	}
	return inventory.ErrReservationClosed
}

func rejected(reason string) error {
	if reason == errs.ReasonOf(inventory.ErrReservationClosed) {
		return inventory.ErrReservationClosed
	}
	return inventory.ErrOutOfStock
}

// union is a's lines and those of b's products that a lacks, by product.
func union(a, b []inventory.Line) []inventory.Line {
	out := normalize(a)
	for _, l := range b {
		if !slices.ContainsFunc(out, func(o inventory.Line) bool { return o.ProductID == l.ProductID }) {
			out = append(out, l)
		}
	}
	return normalize(out)
}

func (s *Service) releaseLines(ctx context.Context, meta eventstore.Metadata, order string, lines []inventory.Line) error {
	for _, ln := range lines {
		res, err := s.stock.Handle(ctx, ln.ProductID, meta, func(l aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return l.State.Release(ln.ProductID, order, s.now())
		})
		if err != nil {
			return err
		}
		s.note(ln.ProductID, res.State, res.Version)
	}
	return nil
}

// Release gives back whatever order holds — lines, plus any its
// reservation recorded — and makes a later Reserve for it fail.
// Releasing a committed order does nothing. It is idempotent. The release
// is recorded before any stock is touched, so a reservation racing with
// it sees it.
func (s *Service) Release(ctx context.Context, meta eventstore.Metadata, order string, lines []inventory.Line) error {
	var st inventory.Reservation
	all := lines
	_, err := s.res.Handle(ctx, order, meta, func(l aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		st = l.State
		all = union(lines, st.Lines)
		switch st.Status {
		case inventory.ReservationCommitted, inventory.ReservationReleased:
			return nil, nil
		}
		return []inventory.Event{inventory.OrderStockReleased{OrderID: order, Lines: all, At: s.now().UTC()}}, nil
	})
	if err != nil || st.Status == inventory.ReservationCommitted {
		return err
	}
	return s.releaseLines(ctx, meta, order, all)
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
		res, err := s.stock.Handle(ctx, ln.ProductID, meta, func(st aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return st.State.Commit(ln.ProductID, order, s.now())
		})
		if err != nil {
			return err
		}
		s.note(ln.ProductID, res.State, res.Version)
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
