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
	store, _ := testenv.SQLite(t)
	ctx := context.Background()
	s := NewService(store)
	m := eventstore.Metadata{}
	if _, _, err := s.Restock(ctx, m, "p1", 1); err != nil {
		t.Fatal(err)
	}
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
	if err := s.Release(ctx, m, "o2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, m, "o2", []inventory.Line{{ProductID: "p1", Quantity: 1}}); !errors.Is(err, inventory.ErrReservationClosed) {
		t.Fatalf("reserve after release = %v, want closed", err)
	}
	if l, _, _ := s.Get(ctx, "p1"); l.Reserved != 0 || l.OnHand != 1 {
		t.Fatalf("stock %+v", l)
	}
}
