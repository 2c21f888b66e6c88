package app

import (
	"context"
	"errors"
	"testing"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestReserveAgainAfterRestart(t *testing.T) {
	store, _ := testenv.SQLite(t)
	ctx := context.Background()
	s := NewService(store)
	if _, _, err := s.Restock(ctx, eventstore.Metadata{}, "p1", 1000); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 450; i++ {
		o := "o" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := s.Reserve(ctx, eventstore.Metadata{}, o, []inventory.Line{{ProductID: "p1", Quantity: 1}}); err != nil {
			t.Fatal(i, err)
		}
		s2 := NewService(store) // a restart: no cache
		if err := s2.Reserve(ctx, eventstore.Metadata{}, o, []inventory.Line{{ProductID: "p1", Quantity: 1}}); err != nil {
			t.Fatal(i, "again:", err)
		}
	}
}

// TestRefusedReserveCrashedBeforeRecording: a reservation refused for
// lack of stock released its lines (leaving tombstones) and crashed before
// recording the refusal; reserving again must say out of stock, not
// "closed" as if the order had been cancelled.
func TestRefusedReserveCrashedBeforeRecording(t *testing.T) {
	_, s, ctx, m := stocked(t, 1, "p1")
	lines := []inventory.Line{{ProductID: "p1", Quantity: 2}}
	// What the crashed attempt left: the request and the tombstone.
	if _, err := s.res.Handle(ctx, "o1", m, func(aggregate.Loaded[inventory.Reservation]) ([]inventory.Event, error) {
		return []inventory.Event{inventory.ReservationRequested{OrderID: "o1", Lines: lines}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.releaseLines(ctx, m, "o1", lines); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, m, "o1", lines); !errors.Is(err, inventory.ErrOutOfStock) {
		t.Fatalf("reserve again = %v, want out of stock", err)
	}
	// A cancellation's tombstone still closes the order.
	if err := s.Release(ctx, m, "o2", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, m, "o2", []inventory.Line{{ProductID: "p1", Quantity: 1}}); !errors.Is(err, inventory.ErrReservationClosed) {
		t.Fatalf("reserve after release = %v, want closed", err)
	}
	if l, _, _ := s.Get(ctx, "p1"); l.Reserved != 0 || l.OnHand != 1 {
		t.Fatalf("stock %+v", l)
	}
}

// TestRefusedReserveCrashedBeforeRecordingAnything: as above, but the
// crashed attempt recorded nothing on the reservation (the current way:
// the outcome is the first record), only its tombstone on the stock.
func TestRefusedReserveCrashedBeforeRecordingAnything(t *testing.T) {
	store, s, ctx, m := stocked(t, 1, "p1")
	lines := []inventory.Line{{ProductID: "p1", Quantity: 2}}
	if err := s.releaseLines(ctx, m, "o1", lines); err != nil {
		t.Fatal(err)
	}
	if err := NewService(store).Reserve(ctx, m, "o1", lines); !errors.Is(err, inventory.ErrOutOfStock) {
		t.Fatalf("reserve again = %v, want out of stock", err)
	}
}

// holdOnly does what a Reserve that crashed after taking its holds and
// before recording the outcome did.
func holdOnly(t *testing.T, s *Service, order string, lines []inventory.Line) {
	t.Helper()
	for _, ln := range lines {
		if _, err := s.stock.Handle(context.Background(), ln.ProductID, eventstore.Metadata{}, func(l aggregate.Loaded[inventory.Stock]) ([]inventory.Event, error) {
			return l.State.Reserve(ln.ProductID, order, ln.Quantity, s.now())
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func wantLevel(t *testing.T, store eventstore.Store, product string, onHand, reserved int64) {
	t.Helper()
	l, _, err := NewService(store).Get(context.Background(), product)
	if err != nil {
		t.Fatal(err)
	}
	if l.OnHand != onHand || l.Reserved != reserved {
		t.Fatalf("%s: on hand %d reserved %d, want %d and %d", product, l.OnHand, l.Reserved, onHand, reserved)
	}
}

// TestReleaseAfterReserveCrashedBeforeOutcome: holds were taken, the
// outcome never recorded; a release that knows the lines (a saga's
// compensation) gives them back, and a late retry of the reservation is
// refused and holds nothing.
func TestReleaseAfterReserveCrashedBeforeOutcome(t *testing.T) {
	store, s, ctx, m := stocked(t, 5, "p1", "p2")
	lines := []inventory.Line{{ProductID: "p1", Quantity: 2}, {ProductID: "p2", Quantity: 1}}
	holdOnly(t, s, "o1", lines)
	wantLevel(t, store, "p1", 5, 2)
	s = NewService(store) // restart
	if err := s.Release(ctx, m, "o1", lines); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, store, "p1", 5, 0)
	wantLevel(t, store, "p2", 5, 0)
	if err := s.Reserve(ctx, m, "o1", lines); !errors.Is(err, inventory.ErrReservationClosed) {
		t.Fatalf("reserve after release = %v, want closed", err)
	}
	wantLevel(t, store, "p1", 5, 0)
	wantLevel(t, store, "p2", 5, 0)
}

// TestRedeliveredReserveAfterLinelessRelease: choreography's release
// (an OrderCancelled reaction) knows no lines; when it lands between a
// crashed reservation's holds and its redelivery, the redelivered
// reservation gives the holds back.
func TestRedeliveredReserveAfterLinelessRelease(t *testing.T) {
	store, s, ctx, m := stocked(t, 5, "p1")
	lines := []inventory.Line{{ProductID: "p1", Quantity: 3}}
	holdOnly(t, s, "o1", lines)
	s = NewService(store)
	if err := s.Release(ctx, m, "o1", nil); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, store, "p1", 5, 3) // the release could not know
	if err := s.Reserve(ctx, m, "o1", lines); !errors.Is(err, inventory.ErrReservationClosed) {
		t.Fatalf("redelivered reserve = %v, want closed", err)
	}
	wantLevel(t, store, "p1", 5, 0)
}

// TestReserveRecordsItsLines: the outcome carries the lines, so a release
// or commit that knows none still finds them.
func TestReserveRecordsItsLines(t *testing.T) {
	store, s, ctx, m := stocked(t, 5, "p1")
	lines := []inventory.Line{{ProductID: "p1", Quantity: 1}, {ProductID: "p1", Quantity: 1}}
	if err := s.Reserve(ctx, m, "o1", lines); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, m, "o2", lines[:1]); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, store, "p1", 5, 3)
	s = NewService(store)
	if err := s.Release(ctx, m, "o1", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, m, "o2"); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, store, "p1", 4, 0)
}

// TestSeenFollowsWrites: the remembered levels follow every write of this
// process, and a product never seen is loaded (zero when unknown).
func TestSeenFollowsWrites(t *testing.T) {
	store, s, ctx, m := stocked(t, 5, "p1")
	if err := s.Reserve(ctx, m, "o1", []inventory.Line{{ProductID: "p1", Quantity: 2}}); err != nil {
		t.Fatal(err)
	}
	seen := func(s *Service, ids ...string) []Level {
		t.Helper()
		lv, err := s.Seen(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		return lv
	}
	if lv := seen(s, "p1", "p9"); lv[0] != (Level{ProductID: "p1", OnHand: 5, Reserved: 2, Available: 3}) || lv[1] != (Level{ProductID: "p9"}) {
		t.Fatalf("after reserving: %+v", lv)
	}
	if err := s.Release(ctx, m, "o1", nil); err != nil {
		t.Fatal(err)
	}
	if lv := seen(s, "p1"); lv[0].Available != 5 {
		t.Fatalf("after releasing: %+v", lv)
	}
	if lv := seen(NewService(store), "p1"); lv[0] != (Level{ProductID: "p1", OnHand: 5, Available: 5}) {
		t.Fatalf("another process loads it: %+v", lv)
	}
}

// stocked returns a store and a service over it with qty units of each
// product restocked.
func stocked(t *testing.T, qty int64, products ...string) (eventstore.Store, *Service, context.Context, eventstore.Metadata) {
	t.Helper()
	store, _ := testenv.SQLite(t)
	ctx, m := context.Background(), eventstore.Metadata{}
	s := NewService(store)
	for _, p := range products {
		if _, _, err := s.Restock(ctx, m, p, qty); err != nil {
			t.Fatal(err)
		}
	}
	return store, s, ctx, m
}
