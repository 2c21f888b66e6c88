package inventory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/inventory"
)

// replay folds events into a fresh stock.
func replay(events []inventory.Event) inventory.Stock {
	var s inventory.Stock
	for _, e := range events {
		s = inventory.EvolveStock(s, e)
	}
	return s
}

func TestEndedHoldsAreForgottenAfterRetention(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []inventory.Event{inventory.StockRestocked{ProductID: "p", Quantity: 1_000_000, At: t0}}
	// Day one: 3000 orders; a third stay reserved, a third ship, a third
	// are released.
	for i := range 3000 {
		order := fmt.Sprintf("old-%d", i)
		events = append(events, inventory.StockReserved{ProductID: "p", OrderID: order, Quantity: 2, At: t0})
		switch i % 3 {
		case 1:
			events = append(events, inventory.StockCommitted{ProductID: "p", OrderID: order, Quantity: 2, At: t0})
		case 2:
			events = append(events, inventory.StockReleased{ProductID: "p", OrderID: order, Quantity: 2, At: t0})
		}
	}
	// Two days later, more orders, all ended.
	later := t0.Add(2 * inventory.HoldRetention)
	for i := range 3000 {
		order := fmt.Sprintf("new-%d", i)
		events = append(events, inventory.StockReserved{ProductID: "p", OrderID: order, Quantity: 1, At: later},
			inventory.StockReleased{ProductID: "p", OrderID: order, Quantity: 1, At: later})
	}
	s := replay(events)

	for i := range 3000 {
		h, ok := s.Holds[fmt.Sprintf("old-%d", i)]
		switch {
		case i%3 == 0 && (!ok || h.State != inventory.HoldReserved):
			t.Fatalf("old-%d: an open hold was forgotten (%v %+v)", i, ok, h)
		case i%3 != 0 && ok:
			t.Fatalf("old-%d: a hold that ended long ago is still kept: %+v", i, h)
		}
	}
	for i := range 3000 {
		if h, ok := s.Holds[fmt.Sprintf("new-%d", i)]; !ok || h.State != inventory.HoldReleased {
			t.Fatalf("new-%d: a recent release was forgotten (%v %+v)", i, ok, h)
		}
	}
	// Counts are untouched by forgetting.
	if s.Reserved != 1000*2 || s.OnHand != 1_000_000-1000*2 {
		t.Fatalf("reserved %d, on hand %d", s.Reserved, s.OnHand)
	}
	// The state is a function of the events alone: replaying a prefix and
	// then the rest gives the same holds.
	mid := replay(events[:4000])
	for _, e := range events[4000:] {
		mid = inventory.EvolveStock(mid, e)
	}
	if len(mid.Holds) != len(s.Holds) || mid.PruneAt != s.PruneAt {
		t.Fatalf("replays differ: %d/%d holds, prune at %d/%d", len(mid.Holds), len(s.Holds), mid.PruneAt, s.PruneAt)
	}
}

func TestRecentHoldsStayAndAnswerRedeliveries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []inventory.Event{inventory.StockRestocked{ProductID: "p", Quantity: 10, At: t0},
		inventory.StockReleased{ProductID: "p", OrderID: "cancelled", At: t0}} // a tombstone
	for i := range 5000 { // many orders, all within the retention
		at := t0.Add(time.Duration(i) * time.Second)
		order := fmt.Sprintf("o-%d", i)
		events = append(events, inventory.StockReserved{ProductID: "p", OrderID: order, Quantity: 1, At: at},
			inventory.StockReleased{ProductID: "p", OrderID: order, Quantity: 1, At: at})
	}
	s := replay(events)
	if _, err := s.Reserve("p", "cancelled", 1, t0.Add(2*time.Hour)); err != inventory.ErrReservationClosed {
		t.Fatalf("a late reservation of a released order within the retention: %v", err)
	}
	if evs, err := s.Release("p", "o-17", t0.Add(2*time.Hour)); err != nil || len(evs) != 0 {
		t.Fatalf("a redelivered release: %v %v", evs, err)
	}
}
