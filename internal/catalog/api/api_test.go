package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
)

// product is a product body with a SKU, a name and a price in USD.
func product(sku, name string, amount int64) string {
	return fmt.Sprintf(`{"sku":%q,"name":%q,"description":"d-%s","price":{"amount":%d,"currency":"USD"}}`, sku, name, sku, amount)
}

// create creates a product as a merchant and returns its body.
func create(t *testing.T, h *moduletest.Harness, body string) map[string]any {
	t.Helper()
	r := h.As("merchant").Do("POST", "/api/v1/products", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", body, r.Status, r.Raw)
	}
	return r.Body
}

// price returns a product body's price as amount and currency.
func price(t *testing.T, p map[string]any) (float64, string) {
	t.Helper()
	m, ok := p["price"].(map[string]any)
	if !ok || len(m) != 2 {
		t.Fatalf("price of %v", p)
	}
	a, _ := m["amount"].(float64)
	c, _ := m["currency"].(string)
	return a, c
}

// problem checks a problem answer and, if field is not empty, that it
// names field among its offending fields.
func problem(t *testing.T, r moduletest.Response, status int, field string) {
	t.Helper()
	p := testenv.Problem(t, r.Status, r.Header, r.Raw, status)
	if field != "" && !slices.ContainsFunc(p.Errors, func(e errs.FieldError) bool { return e.Field == field }) {
		t.Fatalf("problem does not name field %q: %s", field, r.Raw)
	}
}

func TestCreate(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		body := product("MUG-1", "Mug", 1299)

		r := h.As("").Do("POST", "/api/v1/products", body)
		problem(t, r, http.StatusUnauthorized, "")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without a challenge: %v", r.Header)
		}
		problem(t, h.As("").Do("POST", "/api/v1/products", body, "Authorization", "Bearer not.a.token"), http.StatusUnauthorized, "")
		problem(t, h.As("customer").Do("POST", "/api/v1/products", body), http.StatusForbidden, "")
		if r := h.As("").Do("GET", "/api/v1/products", ""); r.Status != http.StatusOK || len(r.Body["items"].([]any)) != 0 {
			t.Fatalf("refused creates left products: %d %s", r.Status, r.Raw)
		}

		r = h.As("merchant").Do("POST", "/api/v1/products", body)
		if r.Status != http.StatusCreated {
			t.Fatalf("merchant create: %d %s", r.Status, r.Raw)
		}
		id, _ := r.Body["id"].(string)
		if id == "" || r.Header.Get("Location") != "/api/v1/products/"+id {
			t.Fatalf("create: id %q, Location %q", id, r.Header.Get("Location"))
		}
		if r.Body["sku"] != "MUG-1" || r.Body["name"] != "Mug" || r.Body["description"] != "d-MUG-1" || r.Body["version"] != float64(1) {
			t.Fatalf("created %s", r.Raw)
		}
		if a, c := price(t, r.Body); a != 1299 || c != "USD" {
			t.Fatalf("price %v %v", a, c)
		}

		// The Location names the product, for anyone to read.
		g := h.As("").Do("GET", r.Header.Get("Location"), "")
		if g.Status != http.StatusOK || !bytes.Equal(g.Raw, r.Raw) {
			t.Fatalf("read back:\n%d %s\nwant %s", g.Status, g.Raw, r.Raw)
		}
		// A bad token on a public route is ignored, not refused.
		if g := h.As("").Do("GET", "/api/v1/products/"+id, "", "Authorization", "Bearer stale"); g.Status != http.StatusOK {
			t.Fatalf("public read with a bad token: %d %s", g.Status, g.Raw)
		}

		// An admin creates too, with an ID of its choosing.
		r = h.As("admin").Do("POST", "/api/v1/products", `{"id":"p-admin","sku":"CUP-1","name":"Cup","price":{"amount":500,"currency":"EUR"}}`)
		if r.Status != http.StatusCreated || r.Body["id"] != "p-admin" || r.Body["description"] != "" ||
			r.Header.Get("Location") != "/api/v1/products/p-admin" {
			t.Fatalf("admin create: %d %v %s", r.Status, r.Header, r.Raw)
		}
		if a, c := price(t, h.As("customer").Do("GET", "/api/v1/products/p-admin", "").Body); a != 500 || c != "EUR" {
			t.Fatalf("admin's product price %v %v", a, c)
		}
		if r := h.As("").Do("GET", "/api/v1/products", ""); r.Status != http.StatusOK || len(r.Body["items"].([]any)) != 2 {
			t.Fatalf("list after two creates: %d %s", r.Status, r.Raw)
		}
	})
}

func TestList(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		anon := h.As("")
		r := anon.Do("GET", "/api/v1/products", "")
		if r.Status != http.StatusOK || !bytes.Contains(r.Raw, []byte(`"items":[]`)) || r.Body["next_cursor"] != nil {
			t.Fatalf("empty list: %d %s", r.Status, r.Raw)
		}
		want := map[string]bool{}
		for i := range 7 {
			want[create(t, h, product(fmt.Sprintf("SKU-%d", i), fmt.Sprintf("Product %d", i), int64(100+i)))["id"].(string)] = true
		}

		// Pages of 3: 3, 3, 1, every product once, no cursor on the last.
		seen := map[string]bool{}
		var sizes []int
		path := "/api/v1/products?limit=3"
		for range 10 {
			r := anon.Do("GET", path, "")
			if r.Status != http.StatusOK {
				t.Fatalf("%s: %d %s", path, r.Status, r.Raw)
			}
			items := r.Body["items"].([]any)
			sizes = append(sizes, len(items))
			for _, it := range items {
				id := it.(map[string]any)["id"].(string)
				if seen[id] || !want[id] {
					t.Fatalf("page %s: product %s again or unknown", path, id)
				}
				seen[id] = true
			}
			cur, ok := r.Body["next_cursor"]
			if !ok {
				if bytes.Contains(r.Raw, []byte("next_cursor")) {
					t.Fatalf("last page names a cursor: %s", r.Raw)
				}
				break
			}
			if s, _ := cur.(string); s == "" {
				t.Fatalf("cursor %v", cur)
			}
			path = "/api/v1/products?limit=3&cursor=" + url.QueryEscape(cur.(string))
		}
		if !slices.Equal(sizes, []int{3, 3, 1}) || len(seen) != 7 {
			t.Fatalf("page sizes %v, %d products seen", sizes, len(seen))
		}

		// A page exactly as long as what is left has no cursor either.
		for _, q := range []string{"", "?limit=7", "?limit=500"} {
			r := anon.Do("GET", "/api/v1/products"+q, "")
			if r.Status != http.StatusOK || len(r.Body["items"].([]any)) != 7 || r.Body["next_cursor"] != nil {
				t.Fatalf("list%s: %d %s", q, r.Status, r.Raw)
			}
		}
		if r := anon.Do("GET", "/api/v1/products?limit=6", ""); len(r.Body["items"].([]any)) != 6 || r.Body["next_cursor"] == nil {
			t.Fatalf("limit=6: %s", r.Raw)
		}

		for _, q := range []string{"limit=0", "limit=-1", "limit=501", "limit=abc", "limit=2.5", "limit="} {
			r := anon.Do("GET", "/api/v1/products?"+q, "")
			if q == "limit=" { // an empty limit is the default
				if r.Status != http.StatusOK {
					t.Fatalf("%s: %d %s", q, r.Status, r.Raw)
				}
				continue
			}
			problem(t, r, http.StatusBadRequest, "limit")
		}
		problem(t, anon.Do("GET", "/api/v1/products?page=2", ""), http.StatusBadRequest, "page")
		for _, c := range []string{"!!!", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte("x"), 200))} {
			problem(t, anon.Do("GET", "/api/v1/products?cursor="+url.QueryEscape(c), ""), http.StatusBadRequest, "cursor")
		}
	})
}

func TestUpdate(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		p := create(t, h, product("LAMP-1", "Lamp", 4000))
		path := "/api/v1/products/" + p["id"].(string)

		r := h.As("merchant").Do("PUT", path, `{"price":{"amount":3500,"currency":"USD"}}`)
		if r.Status != http.StatusOK || r.Body["version"] != float64(2) || r.Body["name"] != "Lamp" || r.Body["sku"] != "LAMP-1" ||
			r.Body["description"] != "d-LAMP-1" || r.Body["created_at"] != p["created_at"] {
			t.Fatalf("price update: %d %s", r.Status, r.Raw)
		}
		if a, _ := price(t, r.Body); a != 3500 {
			t.Fatalf("price after update %v", a)
		}
		r = h.As("admin").Do("PUT", path, `{"name":"Desk lamp"}`)
		if r.Status != http.StatusOK || r.Body["version"] != float64(3) || r.Body["name"] != "Desk lamp" {
			t.Fatalf("name update: %d %s", r.Status, r.Raw)
		}
		if a, _ := price(t, r.Body); a != 3500 {
			t.Fatalf("a name update changed the price: %v", a)
		}
		r = h.As("merchant").Do("PUT", path, `{"description":""}`)
		if r.Status != http.StatusOK || r.Body["version"] != float64(4) || r.Body["description"] != "" || r.Body["name"] != "Desk lamp" {
			t.Fatalf("description update: %d %s", r.Status, r.Raw)
		}
		r = h.As("merchant").Do("PUT", path, `{"name":"Lamp","description":"Warm","price":{"amount":100,"currency":"JPY"}}`)
		if r.Status != http.StatusOK || r.Body["version"] != float64(5) || r.Body["name"] != "Lamp" || r.Body["description"] != "Warm" {
			t.Fatalf("full update: %d %s", r.Status, r.Raw)
		}
		last := r.Raw

		// Readers see the last write, one by one and in the list.
		if g := h.As("").Do("GET", path, ""); !bytes.Equal(g.Raw, last) {
			t.Fatalf("read after update:\n%s\nwant %s", g.Raw, last)
		}
		l := h.As("").Do("GET", "/api/v1/products", "")
		if items := l.Body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["version"] != float64(5) {
			t.Fatalf("list after update: %s", l.Raw)
		}
		if a, c := price(t, l.Body["items"].([]any)[0].(map[string]any)); a != 100 || c != "JPY" {
			t.Fatalf("listed price %v %v", a, c)
		}

		// Refused updates change nothing.
		problem(t, h.As("").Do("PUT", path, `{"name":"Anon"}`), http.StatusUnauthorized, "")
		problem(t, h.As("customer").Do("PUT", path, `{"name":"Mine"}`), http.StatusForbidden, "")
		problem(t, h.As("merchant").Do("PUT", path, `{}`), http.StatusBadRequest, "body")
		problem(t, h.As("merchant").Do("PUT", path, `{"price":null}`), http.StatusBadRequest, "body")
		problem(t, h.As("merchant").Do("PUT", path, `{"sku":"OTHER"}`), http.StatusBadRequest, "sku")
		problem(t, h.As("merchant").Do("PUT", path, `{"version":9}`), http.StatusBadRequest, "version")
		problem(t, h.As("merchant").Do("PUT", path, `{"name":"   "}`), http.StatusBadRequest, "name")
		problem(t, h.As("merchant").Do("PUT", path, `{"name":"`+strings.Repeat("n", 201)+`"}`), http.StatusBadRequest, "name")
		problem(t, h.As("merchant").Do("PUT", path, `{"description":"`+strings.Repeat("d", 4001)+`"}`), http.StatusBadRequest, "description")
		problem(t, h.As("merchant").Do("PUT", path, `{"price":{"amount":-5,"currency":"USD"}}`), http.StatusBadRequest, "price.amount")
		problem(t, h.As("merchant").Do("PUT", path, `{"price":{"amount":0,"currency":"USD"}}`), http.StatusBadRequest, "price.amount")
		problem(t, h.As("merchant").Do("PUT", path, `{"price":{"amount":5,"currency":"XXQ"}}`), http.StatusBadRequest, "")
		// Every field is checked: a good name does not slip in beside a bad price.
		problem(t, h.As("merchant").Do("PUT", path, `{"name":"Sneaky","price":{"amount":-1,"currency":"USD"}}`), http.StatusBadRequest, "price.amount")
		if g := h.As("").Do("GET", path, ""); !bytes.Equal(g.Raw, last) {
			t.Fatalf("refused updates changed the product:\n%s\nwant %s", g.Raw, last)
		}
		if l2 := h.As("").Do("GET", "/api/v1/products", ""); !bytes.Equal(l2.Raw, l.Raw) {
			t.Fatalf("refused updates changed the list:\n%s\nwant %s", l2.Raw, l.Raw)
		}

		// An update with the same values is still a new version (a PUT is
		// not conditional), and is answered like any other.
		r = h.As("merchant").Do("PUT", path, `{"name":"Lamp"}`)
		if r.Status != http.StatusOK || r.Body["version"] != float64(6) {
			t.Fatalf("same-value update: %d %s", r.Status, r.Raw)
		}
	})
}

func TestValidation(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		create(t, h, product("KEEP-1", "Kept", 100))
		before := h.As("").Do("GET", "/api/v1/products", "")
		m := h.As("merchant")

		long := strings.Repeat("é", 201)
		for _, c := range []struct {
			name, body string
			status     int
			field      string
		}{
			{"unknown field", `{"sku":"A-1","name":"A","price":{"amount":1,"currency":"USD"},"color":"red"}`, 400, "color"},
			{"unknown money field", `{"sku":"A-1","name":"A","price":{"amount":1,"currency":"USD","tax":1}}`, 400, ""},
			{"unknown currency", `{"sku":"A-1","name":"A","price":{"amount":1,"currency":"XYZ"}}`, 400, ""},
			{"lower-case currency", `{"sku":"A-1","name":"A","price":{"amount":1,"currency":"usd"}}`, 400, ""},
			{"no currency", `{"sku":"A-1","name":"A","price":{"amount":1}}`, 400, ""},
			{"negative price", `{"sku":"A-1","name":"A","price":{"amount":-100,"currency":"USD"}}`, 400, "price.amount"},
			{"zero price", `{"sku":"A-1","name":"A","price":{"amount":0,"currency":"USD"}}`, 400, "price.amount"},
			{"fractional price", `{"sku":"A-1","name":"A","price":{"amount":1.5,"currency":"USD"}}`, 400, ""},
			{"price as a string", `{"sku":"A-1","name":"A","price":{"amount":"100","currency":"USD"}}`, 400, ""},
			{"price too large", `{"sku":"A-1","name":"A","price":{"amount":1000000000001,"currency":"USD"}}`, 400, "price.amount"},
			{"price overflows", `{"sku":"A-1","name":"A","price":{"amount":99999999999999999999,"currency":"USD"}}`, 400, ""},
			{"name too long", `{"sku":"A-1","name":"` + long + `","price":{"amount":1,"currency":"USD"}}`, 400, "name"},
			{"blank name", `{"sku":"A-1","name":"  ","price":{"amount":1,"currency":"USD"}}`, 400, "name"},
			{"NUL in name", `{"sku":"A-1","name":"a\u0000b","price":{"amount":1,"currency":"USD"}}`, 400, "name"},
			{"description too long", `{"sku":"A-1","name":"A","description":"` + strings.Repeat("d", 4001) + `","price":{"amount":1,"currency":"USD"}}`, 400, "description"},
			{"no sku", `{"name":"A","price":{"amount":1,"currency":"USD"}}`, 400, "sku"},
			{"no name", `{"sku":"A-1","price":{"amount":1,"currency":"USD"}}`, 400, "name"},
			{"no price", `{"sku":"A-1","name":"A"}`, 400, "price"},
			{"sku with a space", `{"sku":"A 1","name":"A","price":{"amount":1,"currency":"USD"}}`, 400, "sku"},
			{"sku starting with a dash", `{"sku":"-A1","name":"A","price":{"amount":1,"currency":"USD"}}`, 400, "sku"},
			{"sku too long", `{"sku":"` + strings.Repeat("S", 65) + `","name":"A","price":{"amount":1,"currency":"USD"}}`, 400, "sku"},
			{"id too long", `{"id":"` + strings.Repeat("i", 129) + `","sku":"A-1","name":"A","price":{"amount":1,"currency":"USD"}}`, 400, "id"},
			{"wrong type", `{"sku":1,"name":"A","price":{"amount":1,"currency":"USD"}}`, 400, "sku"},
			{"not JSON", `sku=A-1`, 400, ""},
			{"two values", `{"sku":"A-1","name":"A","price":{"amount":1,"currency":"USD"}}{}`, 400, ""},
			{"an array", `[]`, 400, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				problem(t, m.Do("POST", "/api/v1/products", c.body), c.status, c.field)
			})
		}
		problem(t, m.Do("POST", "/api/v1/products", product("A-1", "A", 1), "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "")
		big := `{"sku":"A-1","name":"A","price":{"amount":1,"currency":"USD"},"description":"` + strings.Repeat("x", 1<<20) + `"}`
		problem(t, m.Do("POST", "/api/v1/products", big), http.StatusRequestEntityTooLarge, "")

		if after := h.As("").Do("GET", "/api/v1/products", ""); !bytes.Equal(after.Raw, before.Raw) {
			t.Fatalf("refused creates changed the catalog:\n%s\nwant %s", after.Raw, before.Raw)
		}
		if r := h.As("").Do("GET", "/api/v1/products/A-1", ""); r.Status != http.StatusNotFound {
			t.Fatalf("a refused product exists: %s", r.Raw)
		}

		// The limits themselves are allowed.
		ok := create(t, h, `{"sku":"`+strings.Repeat("S", 64)+`","name":"`+strings.Repeat("é", 200)+`","description":"`+
			strings.Repeat("d", 4000)+`","price":{"amount":1000000000000,"currency":"USD"}}`)
		if n := len([]rune(ok["name"].(string))); n != 200 {
			t.Fatalf("name of %d runes kept as %d", 200, n)
		}
	})
}

func TestConflictsAndUnknown(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		first := create(t, h, product("DUP-1", "First", 100))
		before := h.As("").Do("GET", "/api/v1/products", "")

		r := h.As("admin").Do("POST", "/api/v1/products", product("DUP-1", "Second", 200))
		problem(t, r, http.StatusConflict, "")
		if r.Body["reason"] != "sku_taken" {
			t.Fatalf("duplicate SKU reason: %s", r.Raw)
		}
		// An ID that is taken is refused as well.
		problem(t, h.As("admin").Do("POST", "/api/v1/products", `{"id":"`+first["id"].(string)+`","sku":"DUP-2","name":"Second","price":{"amount":1,"currency":"USD"}}`),
			http.StatusConflict, "")
		if after := h.As("").Do("GET", "/api/v1/products", ""); !bytes.Equal(after.Raw, before.Raw) {
			t.Fatalf("refused duplicates changed the catalog:\n%s\nwant %s", after.Raw, before.Raw)
		}
		// The SKU stays taken after the product is renamed.
		if r := h.As("merchant").Do("PUT", "/api/v1/products/"+first["id"].(string), `{"name":"Renamed"}`); r.Status != http.StatusOK {
			t.Fatalf("rename: %d %s", r.Status, r.Raw)
		}
		problem(t, h.As("merchant").Do("POST", "/api/v1/products", product("DUP-1", "Third", 300)), http.StatusConflict, "")

		for _, id := range []string{"no-such-product", "0197a000-0000-7000-8000-000000000000"} {
			r := h.As("").Do("GET", "/api/v1/products/"+id, "")
			problem(t, r, http.StatusNotFound, "")
			if r.Body["reason"] != "product_not_found" {
				t.Fatalf("unknown product reason: %s", r.Raw)
			}
			problem(t, h.As("merchant").Do("PUT", "/api/v1/products/"+id, `{"name":"Ghost"}`), http.StatusNotFound, "")
			if r := h.As("").Do("GET", "/api/v1/products/"+id, ""); r.Status != http.StatusNotFound {
				t.Fatalf("an update of an unknown product created it: %s", r.Raw)
			}
		}
		// Routes of the table only: other methods are not served.
		if r := h.As("admin").Do("DELETE", "/api/v1/products/"+first["id"].(string), ""); r.Status != http.StatusMethodNotAllowed && r.Status != http.StatusNotFound {
			t.Fatalf("DELETE: %d %s", r.Status, r.Raw)
		}
	})
}

// TestPublished: each accepted write puts one integration event, with its
// caller's tenant, user and trace, in the catalog's outbox; refused ones
// put none.
func TestPublished(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, catalogmod.Module, store, db, nil)
	if len(h.Module.Outboxes) != 1 {
		t.Fatalf("outboxes: %d", len(h.Module.Outboxes))
	}
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	tp := "00-" + trace + "-00f067aa0ba902b7-01"
	merchant := h.AsUser("acme", "u-mona", "merchant")
	r := merchant.Do("POST", "/api/v1/products", product("PUB-1", "Pub", 100), "traceparent", tp)
	if r.Status != http.StatusCreated || r.Header.Get("Agora-Trace-Id") != trace {
		t.Fatalf("create: %d %v %s", r.Status, r.Header, r.Raw)
	}
	id := r.Body["id"].(string)
	problem(t, merchant.Do("POST", "/api/v1/products", product("PUB-1", "Again", 100)), http.StatusConflict, "")
	problem(t, merchant.Do("PUT", "/api/v1/products/"+id, `{"name":""}`), http.StatusBadRequest, "name")
	if r := h.AsUser("acme", "u-max", "admin").Do("PUT", "/api/v1/products/"+id, `{"name":"Pub 2"}`); r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Raw)
	}

	entries, err := h.Module.Outboxes[0].Log.Read(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []messaging.Message
	for _, e := range entries {
		if e.Message != nil {
			msgs = append(msgs, *e.Message)
		}
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages in the outbox, want 2: %+v", len(msgs), msgs)
	}
	for i, w := range []struct{ typ, user, name string }{
		{catalogapi.TypeProductCreated, "u-mona", "Pub"},
		{catalogapi.TypeProductUpdated, "u-max", "Pub 2"},
	} {
		m := msgs[i]
		p, err := messaging.Decode[catalogapi.Product](m)
		if err != nil || m.Type != w.typ || p.ID != id || p.Name != w.name || p.Version != int64(i+1) {
			t.Fatalf("message %d: %s %s (%v)", i, m.Type, m.Data, err)
		}
		if m.Headers[messaging.HeaderTenant] != "acme" || m.Headers[messaging.HeaderUser] != w.user {
			t.Fatalf("message %d headers %v", i, m.Headers)
		}
	}
	if got := msgs[0].Headers[messaging.HeaderTraceParent]; len(got) != 55 || got[3:35] != trace {
		t.Fatalf("created message's trace %q, want trace %s", got, trace)
	}
}

// TestClientChosenIDs: an ID a client chooses must be one its own
// Location can reach, and a taken ID is told apart from a taken SKU.
func TestClientChosenIDs(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		m := h.As("merchant")
		create := func(id, sku string) moduletest.Response {
			return m.Do("POST", "/api/v1/products", `{"id":"`+id+`","sku":"`+sku+`","name":"N","price":{"amount":1,"currency":"USD"}}`)
		}
		for _, id := range []string{"a/b", "a?b", "a#b", "..", "a b", "a%2Fb"} {
			r := create(id, "S-"+strconv.Itoa(len(id)))
			testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusBadRequest)
		}
		if r := create("prod.1:x_y-z", "S-OK"); r.Status != http.StatusCreated || r.Header.Get("Location") != "/api/v1/products/prod.1:x_y-z" {
			t.Fatalf("a safe id: %d %s", r.Status, r.Raw)
		}
		r := create("prod.1:x_y-z", "S-OTHER")
		if p := testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusConflict); p.Reason != "product_exists" {
			t.Fatalf("a taken id: %+v", p)
		}
		r = create("prod-2", "S-OK")
		if p := testenv.Problem(t, r.Status, r.Header, r.Raw, http.StatusConflict); p.Reason != "sku_taken" {
			t.Fatalf("a taken SKU: %+v", p)
		}
	})
}
