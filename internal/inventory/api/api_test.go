package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/inventory/inventorymod"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/testenv"
)

// catalog is a fake catalog: the products it knows exist, "down" cannot
// be asked about, and it counts the questions.
type catalog struct {
	mu    sync.Mutex
	known map[string]bool
	asked []string
}

func (c *catalog) answer() call.Answer {
	return catalogapi.ProductExists.Answer(func(_ context.Context, r catalogapi.ProductRequest) (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.asked = append(c.asked, r.ProductID)
		switch r.ProductID {
		case "down":
			return false, &errs.Error{Code: errs.Unavailable, Reason: "context_unavailable", Message: "the catalog did not answer"}
		case "down-bare":
			return false, &errs.Error{Code: errs.Unavailable}
		}
		return c.known[r.ProductID], nil
	})
}

func (c *catalog) questions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.asked)
}

func start(t testing.TB, store eventstore.Store, db *sql.DB, known ...string) (*moduletest.Harness, *catalog) {
	t.Helper()
	c := &catalog{known: map[string]bool{}}
	for _, id := range known {
		c.known[id] = true
	}
	return moduletest.Start(t, inventorymod.Module, store, db, &moduletest.Options{Fakes: []call.Answer{c.answer()}}), c
}

// level checks GET /api/v1/inventory/{id}.
func level(t *testing.T, h *moduletest.Harness, id string, onHand, reserved int64) {
	t.Helper()
	r := h.As("").Do("GET", "/api/v1/inventory/"+url.PathEscape(id), "")
	if r.Status != http.StatusOK || r.Body["product_id"] != id || r.Body["on_hand"] != float64(onHand) ||
		r.Body["reserved"] != float64(reserved) || r.Body["available"] != float64(onHand-reserved) || len(r.Body) != 4 {
		t.Fatalf("level of %s: %d %s, want on_hand %d reserved %d", id, r.Status, r.Raw, onHand, reserved)
	}
}

// events counts the store's events.
func events(t *testing.T, store eventstore.Store) []eventstore.Record {
	t.Helper()
	recs, err := store.ReadAll(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestRestockAndLevels(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h, _ := start(t, store, db, "p-1", "p-2")

		// No stock recorded yet: 404, for anyone.
		moduletest.Problem(t, h.As("").Do("GET", "/api/v1/inventory/p-1", ""), http.StatusNotFound, "product_not_found")

		r := h.As("merchant").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":5}`)
		if r.Status != http.StatusOK || r.Body["on_hand"] != float64(5) || r.Body["available"] != float64(5) || r.Body["reserved"] != float64(0) {
			t.Fatalf("restock: %d %s", r.Status, r.Raw)
		}
		pos, err := strconv.ParseUint(r.Header.Get("Agora-Position"), 10, 64)
		if err != nil || pos == 0 {
			t.Fatalf("restock position %q", r.Header.Get("Agora-Position"))
		}
		r = h.As("admin").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":7}`)
		if r.Status != http.StatusOK || r.Body["on_hand"] != float64(12) {
			t.Fatalf("second restock: %d %s", r.Status, r.Raw)
		}
		if p2, _ := strconv.ParseUint(r.Header.Get("Agora-Position"), 10, 64); p2 <= pos {
			t.Fatalf("second restock at position %d after %d", p2, pos)
		}
		level(t, h, "p-1", 12, 0)
		// A customer's or a stale token does not stop a public read.
		for _, c := range []*moduletest.Client{h.As("customer"), h.As("merchant")} {
			if r := c.Do("GET", "/api/v1/inventory/p-1", ""); r.Status != http.StatusOK || r.Body["on_hand"] != float64(12) {
				t.Fatalf("read: %d %s", r.Status, r.Raw)
			}
		}
		if r := h.As("").Do("GET", "/api/v1/inventory/p-1", "", "Authorization", "Bearer stale"); r.Status != http.StatusOK {
			t.Fatalf("read with a bad token: %d %s", r.Status, r.Raw)
		}

		// Held stock is reserved, not available.
		reserve := inventoryapi.Reserve.Bind(h.Calls)
		if _, err := reserve(context.Background(), inventoryapi.StockRequest{OrderID: "o-1", Lines: []inventoryapi.Line{{ProductID: "p-1", Quantity: 4}}}); err != nil {
			t.Fatal(err)
		}
		level(t, h, "p-1", 12, 4)
		_, err = reserve(context.Background(), inventoryapi.StockRequest{OrderID: "o-2", Lines: []inventoryapi.Line{{ProductID: "p-1", Quantity: 9}}})
		if !errors.Is(err, &errs.Error{Code: errs.Conflict, Reason: inventoryapi.ReasonOutOfStock}) {
			t.Fatalf("reserving more than available: %v", err)
		}
		level(t, h, "p-1", 12, 4)
		// A restock adds to what is on hand and available.
		if r := h.As("merchant").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":1}`); r.Status != http.StatusOK ||
			r.Body["on_hand"] != float64(13) || r.Body["reserved"] != float64(4) || r.Body["available"] != float64(9) {
			t.Fatalf("restock with a hold: %d %s", r.Status, r.Raw)
		}
		if _, err := inventoryapi.Commit.Bind(h.Calls)(context.Background(), inventoryapi.StockRequest{OrderID: "o-1"}); err != nil {
			t.Fatal(err)
		}
		level(t, h, "p-1", 9, 0)
		moduletest.Problem(t, h.As("").Do("GET", "/api/v1/inventory/p-2", ""), http.StatusNotFound, "product_not_found")
	})
}

func TestRestockRefused(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h, cat := start(t, store, db, "p-1")
		if r := h.As("merchant").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":3}`); r.Status != http.StatusOK {
			t.Fatalf("restock: %d %s", r.Status, r.Raw)
		}
		before := len(events(t, store))
		asked := len(cat.questions())
		m := h.As("merchant")
		for _, c := range []struct {
			name, body string
			status     int
			reason     string
		}{
			{"zero", `{"quantity":0}`, http.StatusUnprocessableEntity, "invalid_quantity"},
			{"negative", `{"quantity":-2}`, http.StatusUnprocessableEntity, "invalid_quantity"},
			{"above the maximum", `{"quantity":1000000001}`, http.StatusUnprocessableEntity, "invalid_quantity"},
			{"beyond int64", `{"quantity":9223372036854775808}`, http.StatusBadRequest, ""},
			{"fractional", `{"quantity":1.5}`, http.StatusBadRequest, ""},
			{"a string", `{"quantity":"3"}`, http.StatusBadRequest, ""},
			{"missing", `{}`, http.StatusBadRequest, ""},
			{"null", `{"quantity":null}`, http.StatusBadRequest, ""},
			{"unknown field", `{"quantity":1,"warehouse":"w-1"}`, http.StatusBadRequest, ""},
			{"empty body", ``, http.StatusBadRequest, ""},
			{"not JSON", `quantity=1`, http.StatusBadRequest, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				r := m.Do("POST", "/api/v1/inventory/p-1/restock", c.body)
				moduletest.Problem(t, r, c.status, c.reason)
				if c.name == "missing" && !bytes.Contains(r.Raw, []byte(`"field":"quantity"`)) {
					t.Fatalf("missing quantity is not named: %s", r.Raw)
				}
			})
		}
		// A bad quantity is refused before the catalog is asked.
		if n := len(cat.questions()); n != asked {
			t.Fatalf("the catalog was asked %d times about refused restocks", n-asked)
		}

		// Who may restock.
		r := h.As("").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":1}`)
		moduletest.Problem(t, r, http.StatusUnauthorized, "")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("no challenge: %v", r.Header)
		}
		moduletest.Problem(t, h.As("customer").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":1}`), http.StatusForbidden, "")

		// A product the catalog does not know: 404; one it cannot say
		// anything about: 503, not a "no".
		moduletest.Problem(t, m.Do("POST", "/api/v1/inventory/ghost/restock", `{"quantity":1}`), http.StatusNotFound, "product_not_found")
		moduletest.Problem(t, m.Do("POST", "/api/v1/inventory/down/restock", `{"quantity":1}`), http.StatusServiceUnavailable, "context_unavailable")
		// The code alone decides the status.
		if r := m.Do("POST", "/api/v1/inventory/down-bare/restock", `{"quantity":1}`); r.Status != http.StatusServiceUnavailable ||
			r.Header.Get("Content-Type") != "application/problem+json" || r.Body["status"] != float64(http.StatusServiceUnavailable) {
			t.Fatalf("catalog unavailable: %d %v %s", r.Status, r.Header, r.Raw)
		}
		if q := cat.questions(); !slices.Contains(q, "ghost") || !slices.Contains(q, "down") {
			t.Fatalf("the catalog was asked %v", q)
		}

		if after := len(events(t, store)); after != before {
			t.Fatalf("refused restocks wrote %d events", after-before)
		}
		level(t, h, "p-1", 3, 0)
		moduletest.Problem(t, h.As("").Do("GET", "/api/v1/inventory/ghost", ""), http.StatusNotFound, "product_not_found")
		moduletest.Problem(t, h.As("").Do("GET", "/api/v1/inventory/down", ""), http.StatusNotFound, "product_not_found")
	})
}

// TestRestockOverflow: on-hand stock has a ceiling; the restock that
// would pass it is refused and changes nothing.
func TestRestockOverflow(t *testing.T) {
	store, db := testenv.SQLite(t)
	h, _ := start(t, store, db, "p-big")
	m := h.As("merchant")
	for i := range 1000 {
		if r := m.Do("POST", "/api/v1/inventory/p-big/restock", `{"quantity":1000000000}`); r.Status != http.StatusOK {
			t.Fatalf("restock %d: %d %s", i, r.Status, r.Raw)
		}
	}
	level(t, h, "p-big", 1000*1_000_000_000, 0)
	moduletest.Problem(t, m.Do("POST", "/api/v1/inventory/p-big/restock", `{"quantity":1}`), http.StatusUnprocessableEntity, "quantity_overflow")
	level(t, h, "p-big", 1000*1_000_000_000, 0)
}

func TestInternalLevels(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h, _ := start(t, store, db, "a", "b", "c")
		m := h.As("merchant")
		for id, q := range map[string]string{"a": "3", "b": "8"} {
			if r := m.Do("POST", "/api/v1/inventory/"+id+"/restock", `{"quantity":`+q+`}`); r.Status != http.StatusOK {
				t.Fatalf("restock %s: %d %s", id, r.Status, r.Raw)
			}
		}
		if _, err := inventoryapi.Reserve.Bind(h.Calls)(context.Background(),
			inventoryapi.StockRequest{OrderID: "o-1", Lines: []inventoryapi.Line{{ProductID: "b", Quantity: 2}}}); err != nil {
			t.Fatal(err)
		}

		// Anyone may ask (the gateway asks without a token), in the order
		// asked, with a zero level for a product without stock.
		r := h.As("").Do("GET", inventoryapi.LevelsPath+"?product_id=b&product_id=c&product_id=a", "")
		if r.Status != http.StatusOK {
			t.Fatalf("levels: %d %s", r.Status, r.Raw)
		}
		items, _ := r.Body["items"].([]any)
		want := []inventoryapi.Level{{ProductID: "b", OnHand: 8, Reserved: 2, Available: 6}, {ProductID: "c"}, {ProductID: "a", OnHand: 3, Available: 3}}
		if len(items) != len(want) {
			t.Fatalf("levels: %s", r.Raw)
		}
		for i, w := range want {
			it := items[i].(map[string]any)
			if it["product_id"] != w.ProductID || it["on_hand"] != float64(w.OnHand) || it["reserved"] != float64(w.Reserved) || it["available"] != float64(w.Available) {
				t.Fatalf("level %d: %v, want %+v", i, it, w)
			}
		}

		many := url.Values{}
		for i := range inventoryapi.MaxLevels {
			many.Add("product_id", "p-"+strconv.Itoa(i))
		}
		if r := h.As("").Do("GET", inventoryapi.LevelsPath+"?"+many.Encode(), ""); r.Status != http.StatusOK || len(r.Body["items"].([]any)) != inventoryapi.MaxLevels {
			t.Fatalf("%d levels: %d", inventoryapi.MaxLevels, r.Status)
		}
		many.Add("product_id", "one-too-many")
		for _, q := range []string{"", "?product_id=", "?product_id=a&product_id=", "?" + many.Encode()} {
			r := h.As("").Do("GET", inventoryapi.LevelsPath+q, "")
			moduletest.Problem(t, r, http.StatusBadRequest, "")
			if !bytes.Contains(r.Raw, []byte(`"field":"product_id"`)) {
				t.Fatalf("levels%s: %s", q, r.Raw)
			}
		}
		// The route is internal: it takes GET only.
		if r := m.Do("POST", inventoryapi.LevelsPath+"?product_id=a", `{}`); r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("POST levels: %d %s", r.Status, r.Raw)
		}
	})
}

// TestRestockCarriesItsCaller: the restock's event records the caller's
// tenant and user, the request's ID as correlation and the trace the
// request continued.
func TestRestockCarriesItsCaller(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h, _ := start(t, store, db, "p-1")
		const trace = "0af7651916cd43dd8448eb211c80319c"
		r := h.AsUser("acme", "u-mona", "merchant").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":2}`,
			"traceparent", "00-"+trace+"-b7ad6b7169203331-01", "X-Request-Id", "req-restock-1")
		if r.Status != http.StatusOK || r.Header.Get("Agora-Trace-Id") != trace || r.Header.Get("X-Request-Id") != "req-restock-1" {
			t.Fatalf("restock: %d %v %s", r.Status, r.Header, r.Raw)
		}
		pos, _ := strconv.ParseUint(r.Header.Get("Agora-Position"), 10, 64)
		var found []eventstore.Record
		for _, rec := range events(t, store) {
			if strings.Contains(rec.Type, "Restocked") {
				found = append(found, rec)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d restock events", len(found))
		}
		rec := found[0]
		md := rec.Metadata
		if rec.Position != pos || md.Tenant != "acme" || md.User != "u-mona" || md.CorrelationID != "req-restock-1" {
			t.Fatalf("event at %d (answer said %d), metadata %+v", rec.Position, pos, md)
		}
		if len(md.TraceParent) != 55 || md.TraceParent[3:35] != trace || md.TraceParent[36:52] == "b7ad6b7169203331" {
			t.Fatalf("traceparent %q: want trace %s continued in a span of its own", md.TraceParent, trace)
		}
		if !bytes.Contains(rec.Data, []byte(`"quantity":2`)) || !bytes.Contains(rec.Data, []byte(`"product_id":"p-1"`)) {
			t.Fatalf("event data %s", rec.Data)
		}

		// Without a traceparent the request starts a trace of its own.
		r = h.As("admin").Do("POST", "/api/v1/inventory/p-1/restock", `{"quantity":1}`)
		own := r.Header.Get("Agora-Trace-Id")
		if r.Status != http.StatusOK || len(own) != 32 || own == trace {
			t.Fatalf("restock: %d trace %q", r.Status, own)
		}
		recs := events(t, store)
		last := recs[len(recs)-1]
		if last.Metadata.Tenant != "demo" || last.Metadata.User != "u-admin" || !strings.Contains(last.Metadata.TraceParent, own) {
			t.Fatalf("second restock's metadata %+v, trace %s", last.Metadata, own)
		}
	})
}
