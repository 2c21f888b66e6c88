package server_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/server"
)

// TestOneCheckoutIsOneTrace places an order with a trace of its own and
// reads that trace back from the ops API: the gateway, ordering and the
// saga's steps in inventory, payments and shipping are all in it.
func TestOneCheckoutIsOneTrace(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	acct := w.account(10_000)
	prod := w.product(300, 10)
	tp, traceID := traced()
	r := w.do("POST", "/api/v1/orders", map[string]any{"items": []map[string]any{{"product_id": prod, "quantity": 1}},
		"shipping_address": address("62701"), "payment_account_id": acct, "customer_id": acct}, "Traceparent", tp)
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	w.expect(id, "Confirmed", "")
	var trace map[string]any
	w.eventually("the checkout's trace", func() string {
		l := w.do("GET", "/api/v1/ops/traces?order_id="+id, nil)
		items, _ := l.body["items"].([]any)
		if l.status != http.StatusOK || len(items) == 0 {
			return "no trace: " + string(l.raw)
		}
		if got := items[0].(map[string]any)["trace_id"]; got != traceID {
			return "trace " + got.(string) + ", want " + traceID
		}
		g := w.do("GET", "/api/v1/ops/traces/"+traceID, nil)
		trace = g.body
		services := map[string]bool{}
		for _, s := range g.body["spans"].([]any) {
			services[s.(map[string]any)["service"].(string)] = true
		}
		for _, want := range []string{"gateway", "ordering", "inventory", "payments", "shipping"} {
			if !services[want] {
				return "no span of " + want
			}
		}
		return ""
	})
	var names []string
	ids := map[string]bool{}
	for _, s := range trace["spans"].([]any) {
		sp := s.(map[string]any)
		names = append(names, sp["service"].(string)+": "+sp["name"].(string))
		ids[sp["span_id"].(string)] = true
	}
	orphans := 0
	for _, s := range trace["spans"].([]any) {
		if p, _ := s.(map[string]any)["parent_span_id"].(string); p != "" && !ids[p] {
			orphans++ // the client's own span, outside the platform
		}
	}
	if orphans != 1 {
		t.Errorf("%d spans whose parent is not in the trace, want 1 (the client's): %v", orphans, names)
	}
	sort.Strings(names)
	names = slices.Compact(names)
	t.Logf("one checkout, %d spans:\n%s", len(trace["spans"].([]any)), strings.Join(names, "\n"))
	if r := w.do("GET", "/api/v1/ops/traces/"+strings.Repeat("0", 32), nil); r.status != http.StatusNotFound {
		t.Errorf("an unknown trace: %d", r.status)
	}
	if r := w.do("GET", "/api/v1/ops/traces?error=maybe", nil); r.status != http.StatusBadRequest {
		t.Errorf("a bad filter: %d", r.status)
	}
}
