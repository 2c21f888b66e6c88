package server_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/app"
)

// TestCarrierBreaker: a carrier slowed to 2 s a call opens shipping's
// breaker on it; while it is open, bookings are refused without calling
// the carrier at all (the refusal's latency is reported, not asserted);
// the checkouts wait, and once the carrier is healed the breaker closes
// and every checkout ends, the invariants holding.
func TestCarrierBreaker(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	guard := w.srv.Service("shipping").(*app.Service).Carrier().(*app.Guarded)
	acct := w.account(100_000)
	prod := w.product(100, 100)
	w.srv.Carrier.Set(0, 2*time.Second)
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := w.order(acct, prod, 1, "62701")
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		}()
	}
	wg.Wait()
	w.eventually("the carrier's breaker opens", func() string {
		if s := guard.State(); s != "open" {
			return "breaker " + s
		}
		return ""
	})
	// Refusals while open: the carrier is not called.
	before := w.srv.Carrier.Calls()
	var took []time.Duration
	addr := shipping.Address{Street: "1 Main St", City: "Springfield", State: "IL", ZipCode: "62701", Country: "US"}
	for i := range 200 {
		start := time.Now()
		_, _, err := guard.Book(context.Background(), fmt.Sprintf("probe-%d", i), addr)
		took = append(took, time.Since(start))
		if err != app.ErrCarrierUnavailable {
			t.Fatalf("a booking while the breaker is open: %v", err)
		}
	}
	if after := w.srv.Carrier.Calls(); after != before {
		t.Fatalf("%d calls reached the carrier while its breaker was open", after-before)
	}
	slices.Sort(took)
	t.Logf("200 refusals with the breaker open: p50 %v, p99 %v, max %v", took[100], took[197], took[199])

	w.srv.Carrier.Set(0, 0)
	confirmed := 0
	for _, id := range ids {
		if o := w.settle(id); o["status"] == "Confirmed" {
			confirmed++
		}
	}
	// The next checkout after the breaker's delay is its trial.
	w.expect(w.order(acct, prod, 1, "62701"), "Confirmed", "")
	w.eventually("the breaker closes after healing", func() string {
		if s := guard.State(); s != "closed" {
			return "breaker " + s
		}
		return ""
	})
	w.invariants()
	t.Logf("%d of %d checkouts held by the slow carrier confirmed after healing, the others cancelled and compensated", confirmed, len(ids))
}
