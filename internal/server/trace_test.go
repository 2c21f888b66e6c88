package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/server"
)

// TestOneCheckoutIsOneTrace places an order with a trace of its own, in
// each checkout mode, and reads that trace back from the ops API: the
// gateway, ordering and the checkout's work in inventory, payments and
// shipping are all in it — their appends, the relay's publishing, the
// consumers of what it published, the order read model's update and the
// call to the carrier — with no span outside it but the client's.
func TestOneCheckoutIsOneTrace(t *testing.T) {
	for _, mode := range []string{server.Orchestration, server.Choreography} {
		t.Run(mode, func(t *testing.T) { oneCheckoutOneTrace(t, mode) })
	}
}

// checkoutSpans are the spans every checkout's trace holds, by name
// (a prefix), whatever its mode.
var checkoutSpans = []string{
	"POST /api/v1/orders",            // the gateway's and ordering's
	"eventstore append",              // every context's
	"relay publish",                  // the events relay
	"process ordering.order.placed",  // a consumer (the BFF's popularity, at least)
	"projection ordering.order_list", // the order read model
	"carrier book",                   // shipping's call to the carrier
}

func oneCheckoutOneTrace(t *testing.T, mode string) {
	w := bootWith(t, mode, "embedded")
	acct := w.account(10_000)
	prod := w.product(300, 10)
	// The setup's events published first: a relay batch's span is in its
	// first message's trace, and the checkout's should lead its own.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.srv.WaitRelayed(ctx); err != nil {
		t.Fatal(err)
	}
	tp, traceID := traced()
	r := w.do("POST", "/api/v1/orders", map[string]any{"items": []map[string]any{{"product_id": prod, "quantity": 1}},
		"shipping_address": address("62701"), "payment_account_id": acct, "customer_id": acct}, "Traceparent", tp)
	if r.status != http.StatusAccepted {
		t.Fatalf("order: %d %s", r.status, r.raw)
	}
	id := r.body["id"].(string)
	w.expect(id, "Confirmed", "")
	want := slices.Clone(checkoutSpans)
	if mode == server.Orchestration {
		want = append(want, "saga step checkout reserve", "projection ordering.checkout_starter")
	} else {
		want = append(want, "process inventory.stock.reserved", "process shipping.shipment.arranged")
	}
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
		var names []string
		for _, s := range g.body["spans"].([]any) {
			sp := s.(map[string]any)
			services[sp["service"].(string)] = true
			names = append(names, sp["name"].(string))
		}
		for _, want := range []string{"gateway", "ordering", "inventory", "payments", "shipping"} {
			if !services[want] {
				return "no span of " + want
			}
		}
		for _, w := range want {
			if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, w) }) {
				return "no span " + w + " among " + strings.Join(names, ", ")
			}
		}
		// A span reaches the store as it ends: a parent may still run.
		if n := outside(g.body["spans"].([]any)); n != 1 {
			return fmt.Sprintf("%d spans whose parent is not in the trace, want 1 (the client's)", n)
		}
		return ""
	})
	var names []string
	ids := map[string]bool{}
	kinds := map[string]map[string]bool{}
	for _, s := range trace["spans"].([]any) {
		sp := s.(map[string]any)
		names = append(names, sp["service"].(string)+": "+sp["name"].(string))
		ids[sp["span_id"].(string)] = true
		if kinds[sp["name"].(string)] == nil {
			kinds[sp["name"].(string)] = map[string]bool{}
		}
		kinds[sp["name"].(string)][sp["kind"].(string)] = true
	}
	for _, s := range trace["spans"].([]any) {
		sp := s.(map[string]any)
		// A consumer's parent is what produced its message, which it
		// links to as well.
		if strings.HasPrefix(sp["name"].(string), "process ") {
			links, _ := sp["links"].([]any)
			if len(links) != 1 || links[0].(map[string]any)["span_id"] != sp["parent_span_id"] {
				t.Errorf("consumer span %v: links %v, want one to its parent %v", sp["name"], links, sp["parent_span_id"])
			}
		}
	}
	for name, want := range map[string]string{"relay publish": "producer", "process ordering.order.placed": "consumer", "carrier book": "client"} {
		if !kinds[name][want] {
			t.Errorf("span %s: kinds %v, want %s", name, kinds[name], want)
		}
	}
	sort.Strings(names)
	counted := []string{}
	for i := 0; i < len(names); {
		j := i
		for j < len(names) && names[j] == names[i] {
			j++
		}
		counted = append(counted, fmt.Sprintf("%s ×%d", names[i], j-i))
		i = j
	}
	t.Logf("one checkout (%s), %d spans:\n%s", mode, len(trace["spans"].([]any)), strings.Join(counted, "\n"))
	if r := w.do("GET", "/api/v1/ops/traces/"+strings.Repeat("0", 32), nil); r.status != http.StatusNotFound {
		t.Errorf("an unknown trace: %d", r.status)
	}
	if r := w.do("GET", "/api/v1/ops/traces?error=maybe", nil); r.status != http.StatusBadRequest {
		t.Errorf("a bad filter: %d", r.status)
	}
}

// outside counts the spans whose parent is not among spans.
func outside(spans []any) int {
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.(map[string]any)["span_id"].(string)] = true
	}
	n := 0
	for _, s := range spans {
		if p, _ := s.(map[string]any)["parent_span_id"].(string); p != "" && !ids[p] {
			n++
		}
	}
	return n
}
