package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/openapi"
	"github.com/agora-commerce/agora/internal/server"
)

// conformance drives a running server and checks every exchange against
// the document: the request with ValidateRequest, the response with
// ValidateResponse, and beyond what those check, that the status is one
// the operation lists (not only its default) and that the body has no
// field the schema does not declare.
type conformance struct {
	t      *testing.T
	ctx    context.Context
	base   string
	router routers.Router
	n      int
	bad    int
}

// call is one request and what the test expects of it.
type call struct {
	name         string
	method, path string
	// body is nil (none), a string or []byte (sent as is), or a value
	// sent as JSON.
	body any
	// token, if set, is sent as a bearer token.
	token string
	// header holds extra request headers (Content-Type overrides JSON).
	header map[string]string
	// want is the expected status; 0 accepts any status the operation
	// lists.
	want int
	// invalid marks a request that breaks the document (the server must
	// refuse it too): ValidateRequest must reject it.
	invalid bool
}

type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r reply) str(field string) string {
	s, _ := r.body[field].(string)
	return s
}

func (c *conformance) mismatch(format string, args ...any) {
	c.t.Helper()
	c.bad++
	c.t.Errorf("MISMATCH "+format, args...)
}

func (c *conformance) do(k call) reply {
	c.t.Helper()
	c.n++
	var raw []byte
	switch b := k.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			c.t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		var rd io.Reader
		if k.body != nil {
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(c.ctx, k.method, c.base+k.path, rd)
		if err != nil {
			c.t.Fatal(err)
		}
		if k.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if k.token != "" {
			req.Header.Set("Authorization", "Bearer "+k.token)
		}
		for h, v := range k.header {
			req.Header.Set(h, v)
		}
		return req
	}

	err := openapi.ValidateRequest(c.ctx, newReq())
	switch {
	case k.invalid && err == nil:
		c.mismatch("%s: %s %s: the document accepts a request the server must refuse", k.name, k.method, k.path)
	case !k.invalid && err != nil:
		c.mismatch("%s: %s %s: request does not match the document:\n%v", k.name, k.method, k.path, err)
	}

	req := newReq()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s: %v", k.name, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		c.t.Fatalf("%s: %v", k.name, err)
	}
	r := reply{status: res.StatusCode, header: res.Header, raw: body}
	_ = json.Unmarshal(body, &r.body)
	if k.want != 0 && r.status != k.want {
		c.t.Errorf("%s: %s %s: status %d, want %d: %s", k.name, k.method, k.path, r.status, k.want, body)
	}
	c.check(k.name, newReq(), r)
	return r
}

// check validates one response to req against the document.
func (c *conformance) check(name string, req *http.Request, r reply) {
	c.t.Helper()
	if err := openapi.ValidateResponse(c.ctx, req, r.status, r.header, r.raw); err != nil {
		c.mismatch("%s: %s %s → %d: response does not match the document:\n%v\nbody: %.500s", name, req.Method, req.URL.Path, r.status, err, r.raw)
	}
	route, _, err := c.router.FindRoute(req)
	if err != nil {
		return // ValidateResponse said so
	}
	rr := route.Operation.Responses.Value(strconv.Itoa(r.status))
	if rr == nil {
		if r.status != http.StatusNotModified {
			c.mismatch("%s: %s %s → %d: the operation does not list this status (only its default covers it)", name, req.Method, route.Path, r.status)
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	media := rr.Value.Content.Get(mt)
	if media == nil || media.Schema == nil || !strings.HasSuffix(mt, "json") {
		return
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(r.raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return // ValidateResponse said so
	}
	undeclared(media.Schema, v, "body", func(where string) {
		c.mismatch("%s: %s %s → %d: %s is not in the document", name, req.Method, route.Path, r.status, where)
	})
}

// undeclared reports the object members of v, at any depth, that schema
// does not declare (unless it allows additional properties).
func undeclared(ref *openapi3.SchemaRef, v any, where string, report func(string)) {
	schemas := flatten(ref, nil)
	if len(schemas) == 0 {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		props := map[string]*openapi3.SchemaRef{}
		open := true
		for _, s := range schemas {
			for name, p := range s.Properties {
				if props[name] == nil {
					props[name] = p
				}
				open = false
			}
		}
		for _, s := range schemas {
			if (s.AdditionalProperties.Has != nil && *s.AdditionalProperties.Has) || s.AdditionalProperties.Schema != nil {
				open = true
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p := props[k]; p != nil {
				undeclared(p, v[k], where+"."+k, report)
			} else if !open {
				report(where + "." + k)
			}
		}
	case []any:
		for _, s := range schemas {
			if s.Items != nil {
				for i, e := range v {
					undeclared(s.Items, e, where+"["+strconv.Itoa(i)+"]", report)
				}
				return
			}
		}
	}
}

// flatten returns ref's schema and those it combines (allOf, oneOf, anyOf).
func flatten(ref *openapi3.SchemaRef, out []*openapi3.Schema) []*openapi3.Schema {
	if ref == nil || ref.Value == nil {
		return out
	}
	out = append(out, ref.Value)
	for _, sub := range ref.Value.AllOf {
		out = flatten(sub, out)
	}
	for _, sub := range ref.Value.OneOf {
		out = flatten(sub, out)
	}
	for _, sub := range ref.Value.AnyOf {
		out = flatten(sub, out)
	}
	return out
}

// poll repeats a GET until done says so (every exchange is checked).
func (c *conformance) poll(name, path, token string, done func(reply) bool) reply {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.do(call{name: name, method: "GET", path: path, token: token, want: http.StatusOK})
		if r.status != http.StatusOK || done(r) {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: still %s after 30s", name, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func usd(n int64) map[string]any { return map[string]any{"amount": n, "currency": "USD"} }

// TestServerConformsToTheDocument boots the real server in process and
// walks every implemented endpoint — successes and the usual refusals —
// checking each request and response against the document.
func TestServerConformsToTheDocument(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the whole platform")
	}
	// httpapi logs server-side failures (the 504s) on the default logger.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	const adminEmail, adminPassword = "admin@openapi.test", "openapi-e2e-admin-password"
	srv, stop, err := server.Start(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		CarrierLatency: 700 * time.Millisecond, CheckoutTimeout: 20 * time.Second, // under the carrier breaker's 1 s call timeout
		BootstrapAdmin: adminEmail + ":" + adminPassword, SeedDemo: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	doc, err := openapi.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &conformance{t: t, ctx: ctx, base: "http://" + srv.Addr(), router: router}
	defer func() {
		t.Logf("checked %d exchanges against the document; %d mismatches", c.n, c.bad)
	}()

	// Operations.
	c.do(call{name: "healthz", method: "GET", path: "/healthz", want: 200})
	c.do(call{name: "readyz", method: "GET", path: "/readyz", want: 200})

	// Identity. Until every context checks tokens the API also works
	// without one: then the walk goes on anonymously.
	c.do(call{name: "jwks", method: "GET", path: "/.well-known/jwks.json", want: 200})
	login := c.do(call{name: "admin login", method: "POST", path: "/api/v1/auth/token",
		body: map[string]any{"email": adminEmail, "password": adminPassword}, want: 200})
	admin := login.str("access_token")
	c.do(call{name: "login: wrong password", method: "POST", path: "/api/v1/auth/token",
		body: map[string]any{"email": adminEmail, "password": "not-the-password"}, want: 401})
	c.do(call{name: "login: unknown field", method: "POST", path: "/api/v1/auth/token",
		body: map[string]any{"email": adminEmail, "password": adminPassword, "remember": true}, want: 400, invalid: true})
	reg := c.do(call{name: "register", method: "POST", path: "/api/v1/customers",
		body: map[string]any{"email": "carol@openapi.test", "password": "carol-password", "name": "Carol"}, want: 201})
	customerAccount := reg.str("account_id")
	c.do(call{name: "register: taken", method: "POST", path: "/api/v1/customers",
		body: map[string]any{"email": "carol@openapi.test", "password": "carol-password", "name": "Carol"}, want: 409})
	c.do(call{name: "register: short password", method: "POST", path: "/api/v1/customers",
		body: map[string]any{"email": "dave@openapi.test", "password": "short", "name": "Dave"}, want: 400, invalid: true})
	customer := c.do(call{name: "customer login", method: "POST", path: "/api/v1/auth/token",
		body: map[string]any{"email": "carol@openapi.test", "password": "carol-password", "tenant": "demo"}, want: 200}).str("access_token")
	c.do(call{name: "me", method: "GET", path: "/api/v1/me", token: customer, want: 200})
	c.do(call{name: "me: no token", method: "GET", path: "/api/v1/me", want: 401})
	c.do(call{name: "metrics", method: "GET", path: "/metrics", want: 200})

	// Payments.
	r := c.do(call{name: "open A", method: "POST", path: "/api/v1/accounts", token: admin,
		header: map[string]string{"Idempotency-Key": "open-a", "X-Request-Id": "e2e-open-a"},
		body:   map[string]any{"owner_id": "alice", "currency": "USD", "initial_balance": usd(1000)}, want: 201})
	if r.header.Get("X-Request-Id") != "e2e-open-a" {
		t.Errorf("X-Request-Id not echoed: %q", r.header.Get("X-Request-Id"))
	}
	a := r.str("id")
	b := c.do(call{name: "open B (bare integer, id)", method: "POST", path: "/api/v1/accounts", token: admin,
		body: map[string]any{"id": "e2e-bob", "owner_id": "bob", "currency": "USD", "initial_balance": 500}, want: 201}).str("id")
	acct := "/api/v1/accounts/" + a
	c.do(call{name: "deposit", method: "POST", path: acct + "/deposits", token: admin, body: map[string]any{"amount": usd(500)}, want: 200})
	pos := c.do(call{name: "withdraw (bare integer)", method: "POST", path: acct + "/withdrawals", token: admin,
		body: map[string]any{"amount": 250}, want: 200}).header.Get("Agora-Position")
	c.do(call{name: "get account", method: "GET", path: acct, token: admin, header: map[string]string{"Agora-Min-Position": pos}, want: 200})
	page := c.do(call{name: "list accounts", method: "GET", path: "/api/v1/accounts?status=Active&min_balance=100&limit=1", token: admin,
		header: map[string]string{"Agora-Min-Position": pos}, want: 200})
	if cur := page.str("next_cursor"); cur != "" {
		c.do(call{name: "list accounts: next page", method: "GET", path: "/api/v1/accounts?status=Active&limit=1&cursor=" + cur, token: admin, want: 200})
	} else {
		t.Errorf("list accounts: no next_cursor: %s", page.raw)
	}
	page = c.do(call{name: "account events", method: "GET", path: acct + "/events?limit=2", token: admin, want: 200})
	if cur := page.str("next_cursor"); cur != "" {
		c.do(call{name: "account events: next page", method: "GET", path: acct + "/events?limit=2&cursor=" + cur, token: admin, want: 200})
	} else {
		t.Errorf("account events: no next_cursor: %s", page.raw)
	}
	tr := c.do(call{name: "transfer", method: "POST", path: "/api/v1/transfers", token: admin,
		body: map[string]any{"from_account_id": a, "to_account_id": b, "amount": usd(100)}, want: 202})
	if id := tr.str("id"); id != "" {
		c.poll("transfer until done", "/api/v1/transfers/"+id, admin, func(r reply) bool { return r.str("status") != "Pending" })
		c.do(call{name: "transfer saga", method: "GET", path: "/api/v1/sagas/" + tr.str("saga_id"), token: admin, want: 200})
	}
	// Idempotency-Key: a repeat replays the first answer; another body
	// with the same key is refused.
	idem := map[string]string{"Idempotency-Key": "e2e-deposit-1"}
	first := c.do(call{name: "deposit with Idempotency-Key", method: "POST", path: acct + "/deposits", token: admin, header: idem, body: map[string]any{"amount": usd(7)}, want: 200})
	again := c.do(call{name: "deposit: repeated key", method: "POST", path: acct + "/deposits", token: admin, header: idem, body: map[string]any{"amount": usd(7)}, want: 200})
	if !bytes.Equal(first.raw, again.raw) {
		t.Errorf("a repeated Idempotency-Key did not replay the first answer:\n%s\n%s", first.raw, again.raw)
	}
	c.do(call{name: "deposit: reused key, other body", method: "POST", path: acct + "/deposits", token: admin, header: idem, body: map[string]any{"amount": usd(8)}, want: 422})
	cl := c.do(call{name: "open C", method: "POST", path: "/api/v1/accounts", token: admin,
		body: map[string]any{"owner_id": "carl", "currency": "USD"}, want: 201}).str("id")
	c.do(call{name: "close", method: "POST", path: "/api/v1/accounts/" + cl + "/close", token: admin, want: 200})
	c.do(call{name: "close again", method: "POST", path: "/api/v1/accounts/" + cl + "/close", token: admin, body: "{}", want: 409})
	c.do(call{name: "deposit: closed", method: "POST", path: "/api/v1/accounts/" + cl + "/deposits", token: admin, body: map[string]any{"amount": 5}, want: 409})
	big := `{"amount":{"amount":1,"currency":"USD"},"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, k := range []call{
		{name: "deposit: unknown field", method: "POST", path: acct + "/deposits", body: `{"amount":5,"admin":true}`, want: 400, invalid: true},
		{name: "deposit: unknown money field", method: "POST", path: acct + "/deposits", body: `{"amount":{"amount":5,"currency":"USD","fx":1}}`, want: 400, invalid: true},
		{name: "deposit: float", method: "POST", path: acct + "/deposits", body: `{"amount":{"amount":5.5,"currency":"USD"}}`, want: 400, invalid: true},
		{name: "deposit: negative", method: "POST", path: acct + "/deposits", body: `{"amount":{"amount":-5,"currency":"USD"}}`, want: 422, invalid: true},
		{name: "withdraw: zero", method: "POST", path: acct + "/withdrawals", body: `{"amount":0}`, want: 422, invalid: true},
		{name: "deposit: other currency", method: "POST", path: acct + "/deposits", body: `{"amount":{"amount":5,"currency":"EUR"}}`, want: 422},
		{name: "deposit: 2 MiB body", method: "POST", path: acct + "/deposits", body: big, want: 413, invalid: true},
		{name: "deposit: text/plain", method: "POST", path: acct + "/deposits", body: `{"amount":5}`, header: map[string]string{"Content-Type": "text/plain"}, want: 415, invalid: true},
		{name: "withdraw: insufficient funds", method: "POST", path: acct + "/withdrawals", body: `{"amount":{"amount":1000000,"currency":"USD"}}`, want: 409},
		{name: "get: missing account", method: "GET", path: "/api/v1/accounts/nope", want: 404},
		{name: "deposit: missing account", method: "POST", path: "/api/v1/accounts/nope/deposits", body: `{"amount":5}`, want: 404},
		{name: "events: missing account", method: "GET", path: "/api/v1/accounts/nope/events", want: 404},
		{name: "open: bad currency", method: "POST", path: "/api/v1/accounts", body: `{"owner_id":"x","currency":"usd"}`, want: 400, invalid: true},
		{name: "open: negative initial", method: "POST", path: "/api/v1/accounts", body: `{"owner_id":"x","currency":"USD","initial_balance":{"amount":-1,"currency":"USD"}}`, want: 422, invalid: true},
		{name: "open: existing id", method: "POST", path: "/api/v1/accounts", body: `{"id":"e2e-bob","owner_id":"x","currency":"USD"}`, want: 409},
		{name: "list: limit 0", method: "GET", path: "/api/v1/accounts?limit=0", want: 400, invalid: true},
		{name: "list: bad status", method: "GET", path: "/api/v1/accounts?status=Frozen", want: 400, invalid: true},
		{name: "get: bad Agora-Min-Position", method: "GET", path: acct, header: map[string]string{"Agora-Min-Position": "soon"}, want: 400, invalid: true},
		{name: "transfer: to itself", method: "POST", path: "/api/v1/transfers", body: map[string]any{"from_account_id": a, "to_account_id": a, "amount": 5}, want: 400},
		{name: "transfer: missing account", method: "POST", path: "/api/v1/transfers", body: map[string]any{"from_account_id": a, "to_account_id": "nope", "amount": 5}, want: 404},
		{name: "transfer: missing", method: "GET", path: "/api/v1/transfers/nope", want: 404},
	} {
		k.token = admin
		c.do(k)
	}
	start := time.Now()
	// A token of the account's partition's log (payments-p<k>.<n>).
	lagging := partition.Log(partition.Of(a, partition.Default)) + ".999999999"
	c.do(call{name: "get: read model lagging", method: "GET", path: acct, token: admin, header: map[string]string{"Agora-Min-Position": lagging}, want: 504})
	t.Logf("a lagging read answered 504 after %v", time.Since(start).Round(time.Millisecond))

	// Catalog and inventory.
	p1 := c.do(call{name: "create product", method: "POST", path: "/api/v1/products", token: admin,
		body: map[string]any{"sku": "E2E-MUG", "name": "Mug", "description": "A mug", "price": usd(1250)}, want: 201}).str("id")
	c.do(call{name: "create product (id, no description)", method: "POST", path: "/api/v1/products", token: admin,
		body: map[string]any{"id": "e2e-cap", "sku": "E2E-CAP", "name": "Cap", "price": usd(900)}, want: 201})
	prod := "/api/v1/products/" + p1
	c.do(call{name: "update product", method: "PUT", path: prod, token: admin, body: map[string]any{"price": usd(1300), "name": "Big mug"}, want: 200})
	c.do(call{name: "get product", method: "GET", path: prod, want: 200})
	page = c.do(call{name: "list products", method: "GET", path: "/api/v1/products?limit=1", want: 200})
	if cur := page.str("next_cursor"); cur != "" {
		c.do(call{name: "list products: next page", method: "GET", path: "/api/v1/products?limit=1&cursor=" + cur, want: 200})
	} else {
		t.Errorf("list products: no next_cursor: %s", page.raw)
	}
	c.do(call{name: "restock", method: "POST", path: "/api/v1/inventory/" + p1 + "/restock", token: admin, body: map[string]any{"quantity": 5}, want: 200})
	c.do(call{name: "get stock", method: "GET", path: "/api/v1/inventory/" + p1, want: 200})
	for _, k := range []call{
		{name: "update product: nothing", method: "PUT", path: prod, body: `{}`, want: 400, invalid: true},
		{name: "update product: unknown field", method: "PUT", path: prod, body: `{"stock":3}`, want: 400, invalid: true},
		{name: "create product: SKU taken", method: "POST", path: "/api/v1/products", body: map[string]any{"sku": "E2E-MUG", "name": "Mug 2", "price": usd(1)}, want: 409},
		{name: "create product: negative price", method: "POST", path: "/api/v1/products", body: map[string]any{"sku": "E2E-NEG", "name": "Neg", "price": usd(-1)}, want: 400, invalid: true},
		{name: "create product: bad SKU", method: "POST", path: "/api/v1/products", body: map[string]any{"sku": "no spaces", "name": "X", "price": usd(1)}, want: 400, invalid: true},
		{name: "get product: missing", method: "GET", path: "/api/v1/products/nope", want: 404},
		{name: "list products: unknown parameter", method: "GET", path: "/api/v1/products?sort=name", want: 400},
		{name: "restock: zero", method: "POST", path: "/api/v1/inventory/" + p1 + "/restock", body: map[string]any{"quantity": 0}, want: 422, invalid: true},
		{name: "restock: missing product", method: "POST", path: "/api/v1/inventory/nope/restock", body: map[string]any{"quantity": 1}, want: 404},
		{name: "get stock: never stocked", method: "GET", path: "/api/v1/inventory/e2e-cap", want: 404},
	} {
		k.token = admin
		c.do(k)
	}

	// Ordering and checkout: as the registered customer paying from the
	// account registration opened, or (without identity) as "bob".
	payFrom, orderAs := customerAccount, customer
	extra := map[string]any{}
	if customer == "" {
		payFrom, orderAs = b, ""
		extra["customer_id"] = "bob"
		t.Log("no customer token: ordering anonymously as customer_id bob")
	} else {
		c.do(call{name: "fund the customer", method: "POST", path: "/api/v1/accounts/" + payFrom + "/deposits", token: admin, body: map[string]any{"amount": usd(100_000)}, want: 200})
	}
	address := map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}
	order := func(name string, qty int, more map[string]any, want int) reply {
		body := map[string]any{"items": []any{map[string]any{"product_id": p1, "quantity": qty}},
			"shipping_address": address, "payment_account_id": payFrom}
		for k, v := range extra {
			body[k] = v
		}
		for k, v := range more {
			body[k] = v
		}
		return c.do(call{name: name, method: "POST", path: "/api/v1/orders", token: orderAs, body: body, want: want})
	}
	o1 := order("place order", 2, map[string]any{"promotion_code": "WELCOME10"}, 202).str("id")
	c.poll("order until confirmed", "/api/v1/orders/"+o1, orderAs, func(r reply) bool { return r.str("status") != "Pending" })
	c.do(call{name: "checkout saga", method: "GET", path: "/api/v1/sagas/checkout-" + o1, token: admin, want: 200})
	c.do(call{name: "shipment", method: "GET", path: "/api/v1/shipments/" + o1, token: admin, want: 200})
	c.do(call{name: "list my orders", method: "GET", path: "/api/v1/orders?limit=10", token: orderAs, want: 200})
	c.do(call{name: "list orders: confirmed", method: "GET", path: "/api/v1/orders?status=Confirmed&limit=1", token: admin,
		header: map[string]string{"Agora-Min-Position": pos}, want: 200})
	o2 := order("place order to cancel", 1, map[string]any{"id": "e2e-o2"}, 202).str("id")
	c.do(call{name: "cancel pending order", method: "POST", path: "/api/v1/orders/" + o2 + "/cancel", token: orderAs, want: 202})
	c.poll("order until cancelled", "/api/v1/orders/"+o2, orderAs, func(r reply) bool { return r.str("status") != "Pending" })
	c.do(call{name: "shipment of a cancelled order", method: "GET", path: "/api/v1/shipments/" + o2, token: admin})
	o3 := order("place order: out of stock", 100, nil, 202).str("id")
	c.poll("order until out of stock", "/api/v1/orders/"+o3, orderAs, func(r reply) bool { return r.str("status") != "Pending" })
	// The same order again (a retry) answers with the first placement;
	// another order under a taken ID is a conflict.
	if again := order("place order: the same again", 1, map[string]any{"id": "e2e-o2"}, 202); again.str("id") != o2 {
		t.Fatalf("placing the same order again answered order %q, want %q", again.str("id"), o2)
	}
	order("place order: existing id", 3, map[string]any{"id": "e2e-o2"}, 409)
	order("place order: unknown promotion", 1, map[string]any{"promotion_code": "NOPE"}, 422)
	for _, k := range []call{
		{name: "place order: unknown product", method: "POST", path: "/api/v1/orders", token: orderAs, body: map[string]any{
			"items": []any{map[string]any{"product_id": "nope", "quantity": 1}}, "shipping_address": address, "payment_account_id": payFrom}, want: 422},
		{name: "place order: negative quantity", method: "POST", path: "/api/v1/orders", token: orderAs, body: map[string]any{
			"items": []any{map[string]any{"product_id": p1, "quantity": -1}}, "shipping_address": address, "payment_account_id": payFrom}, want: 400, invalid: true},
		{name: "place order: no items", method: "POST", path: "/api/v1/orders", token: orderAs, body: map[string]any{
			"items": []any{}, "shipping_address": address, "payment_account_id": payFrom}, want: 400, invalid: true},
		{name: "place order: unknown address field", method: "POST", path: "/api/v1/orders", token: orderAs, body: map[string]any{
			"items":            []any{map[string]any{"product_id": p1, "quantity": 1}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "X", "zip_code": "1", "country": "US", "floor": 3}, "payment_account_id": payFrom}, want: 400, invalid: true},
		{name: "cancel confirmed order", method: "POST", path: "/api/v1/orders/" + o1 + "/cancel", token: orderAs, want: 409},
		{name: "cancel: missing order", method: "POST", path: "/api/v1/orders/nope/cancel", token: orderAs, want: 404},
		{name: "get order: missing", method: "GET", path: "/api/v1/orders/nope", token: orderAs, want: 404},
		{name: "list orders: bad status", method: "GET", path: "/api/v1/orders?status=Lost", token: orderAs, want: 400, invalid: true},
		{name: "retry a completed saga", method: "POST", path: "/api/v1/sagas/checkout-" + o1 + "/retry", token: admin, want: 409},
		{name: "get saga: missing", method: "GET", path: "/api/v1/sagas/nope", token: admin, want: 404},
		{name: "get shipment: missing", method: "GET", path: "/api/v1/shipments/nope", token: admin, want: 404},
	} {
		c.do(k)
	}

	// GET /openapi.json: from the server if it serves it yet, else from
	// Handler behind the middleware every route has.
	if res, err := http.Get(c.base + "/openapi.json"); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusOK {
		t.Logf("the server does not serve /openapi.json yet (%d): checking Handler alone", res.StatusCode)
		api := httptest.NewServer(httpapi.Middleware(slog.New(slog.NewTextHandler(io.Discard, nil)), openapi.Handler()))
		defer api.Close()
		c.base = api.URL
	}
	tag := c.do(call{name: "openapi.json", method: "GET", path: "/openapi.json", want: 200}).header.Get("ETag")
	c.do(call{name: "openapi.json: not modified", method: "GET", path: "/openapi.json", header: map[string]string{"If-None-Match": tag}, want: 304})

	if c.bad > 0 {
		t.Errorf("%d of %d exchanges do not match the document (see MISMATCH lines)", c.bad, c.n)
	}
}
