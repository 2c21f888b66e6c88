package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
)

// checkWorld is a gateway whose catalog knows p1 and p2, whose inventory
// has 3 of p1 and no record of p2, and whose ordering accepts every
// order, counting them.
type checkWorld struct {
	gw            *Gateway
	placed        atomic.Int64
	lastBody      atomic.Value
	inventoryDown atomic.Bool
}

func newCheckWorld(t *testing.T) *checkWorld {
	t.Helper()
	w := &checkWorld{}
	serve := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	catalog := serve(func(rw http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/products/")
		if id != "p1" && id != "p2" {
			http.Error(rw, `{"status":404}`, http.StatusNotFound)
			return
		}
		rw.Write([]byte(`{"id":"` + id + `"}`))
	})
	inventory := serve(func(rw http.ResponseWriter, r *http.Request) {
		if w.inventoryDown.Load() {
			http.Error(rw, "down", http.StatusInternalServerError)
			return
		}
		if r.URL.Path != "/internal/v1/inventory/levels" {
			http.Error(rw, `{"status":404}`, http.StatusNotFound)
			return
		}
		var items []string
		for _, id := range r.URL.Query()["product_id"] {
			if id == "p1" {
				items = append(items, `{"product_id":"p1","on_hand":5,"reserved":2,"available":3}`)
			} else {
				items = append(items, `{"product_id":"`+id+`","on_hand":0,"reserved":0,"available":0}`)
			}
		}
		rw.Write([]byte(`{"items":[` + strings.Join(items, ",") + `]}`))
	})
	ordering := serve(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.lastBody.Store(string(b))
		w.placed.Add(1)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusAccepted)
		rw.Write([]byte(`{"id":"o1","status":"Pending","saga_id":"checkout-o1"}`))
	})
	reg := registry.NewStatic()
	for name, url := range map[string]string{"catalog": catalog, "inventory": inventory, "ordering": ordering} {
		if err := reg.Register(name, registry.Instance{ID: name + "-1", URL: url}); err != nil {
			t.Fatal(err)
		}
	}
	table, err := routes.Parse([]byte(`
clusters: {catalog: {}, inventory: {}, ordering: {max_retries: 0}}
rate_limits: {none: {}}
defaults: {rate_limit: none}
routes:
  - {pattern: "POST /api/v1/orders", cluster: ordering, auth: none, check: order}
`))
	if err != nil {
		t.Fatal(err)
	}
	w.gw, err = New(Config{Routes: table, Registry: reg, Verifier: auth.NewVerifier(auth.NewKeySet(), auth.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *checkWorld) place(t *testing.T, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	w.gw.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("answer %d is not JSON: %q", rec.Code, rec.Body.String())
	}
	return rec, m
}

func order(lines string) string {
	return `{"items":[` + lines + `],"shipping_address":{"street":"1 Main","city":"X","state":"CA","zip_code":"94000","country":"US"},"payment_account_id":"a1"}`
}

func TestOrderCheckRefusesUnknownProductsBeforeOrdering(t *testing.T) {
	w := newCheckWorld(t)
	rec, m := w.place(t, order(`{"product_id":"p1","quantity":1},{"product_id":"nope","quantity":1}`))
	if rec.Code != http.StatusUnprocessableEntity || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("answer %d %s: %v", rec.Code, rec.Header().Get("Content-Type"), m)
	}
	if !strings.Contains(rec.Body.String(), `items[1].product_id`) || strings.Contains(rec.Body.String(), `items[0]`) {
		t.Fatalf("fields: %s", rec.Body.String())
	}
	if n := w.placed.Load(); n != 0 {
		t.Fatalf("ordering got %d placements, want none", n)
	}
}

func TestOrderCheckPassesAndWarnsOfShortStock(t *testing.T) {
	w := newCheckWorld(t)
	body := order(`{"product_id":"p1","quantity":2}`)
	rec, m := w.place(t, body)
	if rec.Code != http.StatusAccepted || m["warnings"] != nil {
		t.Fatalf("in stock: %d %v", rec.Code, m)
	}
	if got := w.lastBody.Load(); got != body {
		t.Fatalf("ordering got body %q, want the client's", got)
	}
	// 2 + 2 of p1 (3 available), and p2 with no stock recorded: placed
	// (the saga decides), with both lines named.
	rec, m = w.place(t, order(`{"product_id":"p1","quantity":2},{"product_id":"p1","quantity":2},{"product_id":"p2","quantity":1}`))
	if rec.Code != http.StatusAccepted || m["id"] != "o1" || m["status"] != "Pending" {
		t.Fatalf("short: %d %v", rec.Code, m)
	}
	ws, _ := m["warnings"].([]any)
	if len(ws) != 3 || !strings.Contains(rec.Body.String(), "only 3 available") || !strings.Contains(rec.Body.String(), "items[2].quantity") {
		t.Fatalf("warnings %v", m["warnings"])
	}
	if n := w.placed.Load(); n != 2 {
		t.Fatalf("ordering got %d placements, want 2", n)
	}
}

func TestOrderCheckIsSkippedWhenABackendFails(t *testing.T) {
	w := newCheckWorld(t)
	w.inventoryDown.Store(true)
	rec, m := w.place(t, order(`{"product_id":"p2","quantity":1}`))
	if rec.Code != http.StatusAccepted || m["warnings"] != nil {
		t.Fatalf("inventory down: %d %v", rec.Code, m)
	}
	// Malformed placements go to ordering untouched, for its own answer.
	w.place(t, order(`{"product_id":"p1","quantity":"x"}`))
	if n := w.placed.Load(); n != 2 {
		t.Fatalf("ordering got %d placements, want 2", n)
	}
}
