package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/messaging"
)

// traced returns a traceparent in a new trace, and that trace's ID.
func traced() (traceparent, traceID string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	traceID = hex.EncodeToString(b[:16])
	return "00-" + traceID + "-" + hex.EncodeToString(b[16:]) + "-01", traceID
}

// TestEveryWriteCarriesItsCaller calls every write endpoint with a trace
// of its own and checks that what each wrote — events in the log, the
// catalog's messages on the bus — carries the caller's tenant and user
// and the request's trace; and that nothing written after start-up lacks
// them.
func TestEveryWriteCarriesItsCaller(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	ctx := context.Background()
	// Each context's log has its own positions: where each stood.
	start := map[string]uint64{}
	for _, c := range w.srv.Stores() {
		h, err := c.Store.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start[c.Name] = h
	}

	// The catalog writes rows and outbox messages, not events: its
	// messages' headers are checked on the bus.
	var mu sync.Mutex
	catalogMsgs := map[string]map[string]string{} // trace ID → headers
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	subscribed := make(chan struct{})
	go func() {
		close(subscribed)
		_ = w.srv.Bus().Subscribe(sub, messaging.Consumer{Name: "metadata-test", Stream: "CATALOG", Ephemeral: true},
			func(_ context.Context, d messaging.Delivery) error {
				tp := d.Headers[messaging.HeaderTraceParent]
				if len(tp) == 55 {
					mu.Lock()
					catalogMsgs[tp[3:35]] = d.Headers
					mu.Unlock()
				}
				return nil
			})
	}()
	<-subscribed

	// Each write, as who makes it; want names the user its events carry.
	type write struct {
		name, user string
		trace      string
		catalog    bool
	}
	var writes []write
	call := func(c *client, name, user, method, path string, body any, catalog bool, wantStatus int) response {
		t.Helper()
		tp, id := traced()
		r := c.do(method, path, body, "Traceparent", tp)
		if r.status != wantStatus {
			t.Fatalf("%s: %d %s", name, r.status, r.raw)
		}
		if got := r.header.Get("Agora-Trace-Id"); got != id {
			t.Errorf("%s: Agora-Trace-Id %q, want the incoming trace %q", name, got, id)
		}
		writes = append(writes, write{name: name, user: user, trace: id, catalog: catalog})
		return r
	}
	admin := w.client
	adminID := admin.subject(t)

	email := "meta-" + uuid.NewString()[:8] + "@agora.test"
	reg := call(admin.as(""), "register", "", "POST", "/api/v1/customers", map[string]any{"email": email, "password": "password-123", "name": "M"}, false, http.StatusCreated)
	custID, acct := reg.body["id"].(string), reg.body["account_id"].(string)
	writes[len(writes)-1].user = custID
	login := call(admin.as(""), "login", custID, "POST", "/api/v1/auth/token", map[string]any{"email": email, "password": "password-123"}, false, http.StatusOK)
	cust := admin.as(login.body["access_token"].(string))

	prod := call(admin, "create product", adminID, "POST", "/api/v1/products", map[string]any{"sku": "META-" + uuid.NewString()[:8], "name": "Meta",
		"price": usd(250)}, true, http.StatusCreated).body["id"].(string)
	call(admin, "update product", adminID, "PUT", "/api/v1/products/"+prod, map[string]any{"name": "Meta 2"}, true, http.StatusOK)
	call(admin, "restock", adminID, "POST", "/api/v1/inventory/"+prod+"/restock", map[string]any{"quantity": 10}, false, http.StatusOK)
	other := "meta-" + uuid.NewString()
	call(admin, "open account", adminID, "POST", "/api/v1/accounts", map[string]any{"id": other, "owner_id": other, "currency": "USD"}, false, http.StatusCreated)
	call(cust, "deposit", custID, "POST", "/api/v1/accounts/"+acct+"/deposits", map[string]any{"amount": usd(10_000)}, false, http.StatusOK)
	call(cust, "withdraw", custID, "POST", "/api/v1/accounts/"+acct+"/withdrawals", map[string]any{"amount": usd(100)}, false, http.StatusOK)
	tr := call(cust, "transfer", custID, "POST", "/api/v1/transfers", map[string]any{"from_account_id": acct, "to_account_id": other, "amount": usd(50)}, false, http.StatusAccepted)
	ord := call(cust, "place order", custID, "POST", "/api/v1/orders", map[string]any{"items": []map[string]any{{"product_id": prod, "quantity": 1}},
		"shipping_address": address("62701"), "payment_account_id": acct}, false, http.StatusAccepted)
	w.settle(ord.body["id"].(string))
	w.srv.Carrier.Set(0, 3*time.Second) // hold the next checkout at the shipment step
	pending := call(cust, "place order to cancel", custID, "POST", "/api/v1/orders", map[string]any{"items": []map[string]any{{"product_id": prod, "quantity": 1}},
		"shipping_address": address("62701"), "payment_account_id": acct}, false, http.StatusAccepted)
	call(cust, "cancel order", custID, "POST", "/api/v1/orders/"+pending.body["id"].(string)+"/cancel", nil, false, http.StatusAccepted)
	w.srv.Carrier.Set(0, 0)
	w.expect(pending.body["id"].(string), "Cancelled", "cancelled_by_customer")
	w.eventually("transfer", func() string {
		r := cust.do("GET", "/api/v1/transfers/"+tr.body["id"].(string), nil)
		if s, _ := r.body["status"].(string); s == "Pending" {
			return "pending"
		}
		return ""
	})
	other2 := "meta-" + uuid.NewString()
	call(admin, "open empty account", adminID, "POST", "/api/v1/accounts", map[string]any{"id": other2, "owner_id": other2, "currency": "USD"}, false, http.StatusCreated)
	call(admin, "close account", adminID, "POST", "/api/v1/accounts/"+other2+"/close", nil, false, http.StatusOK)

	var recs []eventstore.Record
	for _, c := range w.srv.Stores() {
		got, err := c.Store.ReadAll(ctx, start[c.Name], 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, got...)
	}
	byTrace := map[string][]eventstore.Record{}
	for _, rec := range recs {
		m := rec.Metadata
		if m.Tenant == "" || m.User == "" || len(m.TraceParent) != 55 {
			t.Errorf("event %d %s in %s: tenant %q, user %q, traceparent %q: want all three", rec.Position, rec.Type, rec.StreamID, m.Tenant, m.User, m.TraceParent)
			continue
		}
		byTrace[m.TraceParent[3:35]] = append(byTrace[m.TraceParent[3:35]], rec)
	}
	w.eventually("catalog messages", func() string {
		mu.Lock()
		defer mu.Unlock()
		for _, wr := range writes {
			if wr.catalog && catalogMsgs[wr.trace] == nil {
				return "no message of " + wr.name
			}
		}
		return ""
	})
	for _, wr := range writes {
		if wr.catalog {
			h := catalogMsgs[wr.trace]
			if h[messaging.HeaderTenant] != "demo" || h[messaging.HeaderUser] != wr.user {
				t.Errorf("%s: catalog message headers %v: want tenant demo, user %s", wr.name, h, wr.user)
			}
			continue
		}
		evs := byTrace[wr.trace]
		if len(evs) == 0 {
			t.Errorf("%s: no event carries its trace %s", wr.name, wr.trace)
			continue
		}
		var types []string
		for _, e := range evs {
			types = append(types, e.Type)
			if e.Metadata.Tenant != "demo" || e.Metadata.User != wr.user {
				t.Errorf("%s: event %s carries tenant %q, user %q: want demo, %s", wr.name, e.Type, e.Metadata.Tenant, e.Metadata.User, wr.user)
			}
		}
		t.Logf("%-22s %2d events: %s", wr.name, len(evs), strings.Join(types, " "))
	}
}
