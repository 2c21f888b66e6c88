package inventory_test

import (
	"encoding/json"
	"fmt"
	"strings"
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
		h, ok := s.Holds.Get(fmt.Sprintf("old-%d", i))
		switch {
		case i%3 == 0 && (!ok || h.State != inventory.HoldReserved):
			t.Fatalf("old-%d: an open hold was forgotten (%v %+v)", i, ok, h)
		case i%3 != 0 && ok:
			t.Fatalf("old-%d: a hold that ended long ago is still kept: %+v", i, h)
		}
	}
	for i := range 3000 {
		if h, ok := s.Holds.Get(fmt.Sprintf("new-%d", i)); !ok || h.State != inventory.HoldReleased {
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
	if mid.Holds.Len() != s.Holds.Len() || mid.PruneAt != s.PruneAt {
		t.Fatalf("replays differ: %d/%d holds, prune at %d/%d", mid.Holds.Len(), s.Holds.Len(), mid.PruneAt, s.PruneAt)
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

// TestStockJSONIsUnchanged: a stock's JSON (its snapshots) is what it was
// when holds were a map[string]Hold: old snapshots decode, and new ones
// read the same.
func TestStockJSONIsUnchanged(t *testing.T) {
	old := `{"product_id":"p","on_hand":10,"reserved":3,"holds":{` +
		`"0190c3e4-5b6a-7c8d-9e0f-a1b2c3d4e5f6":{"quantity":2,"state":"reserved","at":"2026-01-01T00:00:00Z"},` +
		`"legacy-order-7":{"quantity":1,"state":"reserved","at":"2026-01-01T00:00:01.5Z"},` +
		`"x":{"quantity":0,"state":"released"}},"prune_at":2048}`
	var s inventory.Stock
	if err := json.Unmarshal([]byte(old), &s); err != nil {
		t.Fatal(err)
	}
	h, ok := s.Holds.Get("legacy-order-7")
	if !ok || h.Quantity != 1 || h.State != inventory.HoldReserved || !h.At.Equal(time.Date(2026, 1, 1, 0, 0, 1, 5e8, time.UTC)) {
		t.Fatalf("legacy-order-7: %+v %v", h, ok)
	}
	if h, ok := s.Holds.Get("x"); !ok || !h.At.IsZero() || h.State != inventory.HoldReleased {
		t.Fatalf("x: %+v %v", h, ok)
	}
	b, err := json.Marshal(s)
	if err != nil || string(b) != old {
		t.Fatalf("re-encoded:\n%s\nwant\n%s (%v)", b, old, err)
	}
	if err := json.Unmarshal([]byte(`{"holds":{"o":{"quantity":1,"state":"lost"}}}`), &s); err == nil {
		t.Error("an unknown hold state decoded")
	}
	b, _ = json.Marshal(inventory.Stock{ProductID: "p"})
	if strings.Contains(string(b), "holds") {
		t.Errorf("no holds should leave holds out: %s", b)
	}
}
