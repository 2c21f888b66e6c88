package validate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/gateway/validate"
	"github.com/agora-commerce/agora/internal/platform/openapi"
)

// upstream records what the validator let through.
type upstream struct {
	calls int
	body  []byte
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls++
	u.body, _ = io.ReadAll(r.Body)
	w.WriteHeader(http.StatusNoContent)
}

// mux routes every proxied route of the default table through the
// validator to up.
func mux(t testing.TB, up http.Handler) *http.ServeMux {
	t.Helper()
	v, err := validate.Default()
	if err != nil {
		t.Fatal(err)
	}
	m := http.NewServeMux()
	for _, rt := range routes.Default().Routes {
		if rt.Cluster != routes.Local {
			m.Handle(rt.Pattern, v.Handler(rt.Pattern, up))
		}
	}
	return m
}

type problem struct {
	Status int    `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (p problem) fields() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

const (
	orderBody = `{"items":[{"product_id":"0198c1d2-aaaa-7bbb-8ccc-123456789abc","quantity":2}],` +
		`"shipping_address":{"street":"1 Main St","city":"Springfield","state":"IL","zip_code":"62701","country":"US"},` +
		`"payment_account_id":"0198c1d2-bbbb-7bbb-8ccc-123456789abc"}`
	product = "/api/v1/products/0198c1d2-aaaa-7bbb-8ccc-123456789abc"
	deposit = "/api/v1/accounts/acct-1/deposits"
)

func order(edit func(map[string]any)) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(orderBody), &m); err != nil {
		panic(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	return string(b)
}

func TestRequests(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int // 0: passes
		reason                   string
		fields                   []string
		// lenient marks a request that openapi.ValidateRequest refuses
		// but the services accept, and so does the edge; strict one that
		// it accepts, reading path parameters still percent-encoded, but
		// the services refuse, and so does the edge.
		lenient, strict bool
	}{
		{name: "get product", method: "GET", path: product},
		{name: "get product: control character", method: "GET", path: "/api/v1/products/a%01b", status: 400, fields: []string{"id"}, strict: true},
		{name: "get product: 129 bytes", method: "GET", path: "/api/v1/products/" + strings.Repeat("p", 129), status: 400, fields: []string{"id"}},
		{name: "list products", method: "GET", path: "/api/v1/products?limit=5&cursor=abc"},
		{name: "list products: an empty limit is none", method: "GET", path: "/api/v1/products?limit="},
		{name: "list products: unknown parameters are the service's", method: "GET", path: "/api/v1/products?sort=name"},
		{name: "list products: limit 0", method: "GET", path: "/api/v1/products?limit=0", status: 400, fields: []string{"limit"}},
		{name: "list products: limit 501", method: "GET", path: "/api/v1/products?limit=501", status: 400, fields: []string{"limit"}},
		{name: "list products: limit lots", method: "GET", path: "/api/v1/products?limit=lots", status: 400, fields: []string{"limit"}},
		{name: "list accounts: bad status", method: "GET", path: "/api/v1/accounts?status=Frozen", status: 400, fields: []string{"status"}},
		{name: "get account: bad Agora-Min-Position", method: "GET", path: "/api/v1/accounts/a1", header: map[string]string{"Agora-Min-Position": "soon"},
			status: 400, fields: []string{"Agora-Min-Position"}},
		{name: "get account: Agora-Min-Position", method: "GET", path: "/api/v1/accounts/a1", header: map[string]string{"Agora-Min-Position": "42"}},
		{name: "get account: empty Agora-Min-Position", method: "GET", path: "/api/v1/accounts/a1", header: map[string]string{"Agora-Min-Position": ""},
			status: 400, fields: []string{"Agora-Min-Position"}},

		{name: "place order", method: "POST", path: "/api/v1/orders", body: orderBody},
		{name: "place order: charset", method: "POST", path: "/api/v1/orders", body: orderBody, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{name: "place order: no Content-Type", method: "POST", path: "/api/v1/orders", body: orderBody, header: map[string]string{"Content-Type": ""}, lenient: true},
		{name: "place order: +json", method: "POST", path: "/api/v1/orders", body: orderBody, header: map[string]string{"Content-Type": "application/vnd.agora+json"}, lenient: true},
		{name: "place order: text/plain", method: "POST", path: "/api/v1/orders", body: orderBody, header: map[string]string{"Content-Type": "text/plain"}, status: 415},
		{name: "place order: unknown field", method: "POST", path: "/api/v1/orders", body: order(func(m map[string]any) { m["admin"] = true }),
			status: 400, fields: []string{"admin"}},
		{name: "place order: unknown address field", method: "POST", path: "/api/v1/orders",
			body:   order(func(m map[string]any) { m["shipping_address"].(map[string]any)["floor"] = 3 }),
			status: 400, fields: []string{"shipping_address.floor"}},
		{name: "place order: negative quantity", method: "POST", path: "/api/v1/orders",
			body:   order(func(m map[string]any) { m["items"].([]any)[0].(map[string]any)["quantity"] = -1 }),
			status: 400, fields: []string{"items[0].quantity"}},
		{name: "place order: quantity as a string", method: "POST", path: "/api/v1/orders",
			body:   order(func(m map[string]any) { m["items"].([]any)[0].(map[string]any)["quantity"] = "2" }),
			status: 400, fields: []string{"items[0].quantity"}},
		{name: "place order: no zip code", method: "POST", path: "/api/v1/orders",
			body:   order(func(m map[string]any) { delete(m["shipping_address"].(map[string]any), "zip_code") }),
			status: 400, fields: []string{"shipping_address.zip_code"}},
		{name: "place order: no items", method: "POST", path: "/api/v1/orders", body: order(func(m map[string]any) { m["items"] = []any{} }),
			status: 400, fields: []string{"items"}},
		{name: "place order: several faults", method: "POST", path: "/api/v1/orders",
			body: order(func(m map[string]any) {
				delete(m, "payment_account_id")
				m["items"] = append(m["items"].([]any), map[string]any{"product_id": "p2", "quantity": 0, "note": "x"})
			}),
			status: 400, fields: []string{"items[1].note", "items[1].quantity", "payment_account_id"}},
		{name: "place order: empty body", method: "POST", path: "/api/v1/orders", body: "", status: 400},
		{name: "place order: malformed", method: "POST", path: "/api/v1/orders", body: `{"items": [`, status: 400},
		{name: "place order: array", method: "POST", path: "/api/v1/orders", body: `[1]`, status: 400},

		{name: "deposit", method: "POST", path: deposit, body: `{"amount":{"amount":5,"currency":"USD"}}`},
		{name: "deposit: bare integer", method: "POST", path: deposit, body: `{"amount":5}`},
		{name: "deposit: negative", method: "POST", path: deposit, body: `{"amount":{"amount":-5,"currency":"USD"}}`,
			status: 422, reason: "invalid_amount", fields: []string{"amount.amount"}},
		{name: "deposit: zero, bare", method: "POST", path: deposit, body: `{"amount":0}`, status: 422, reason: "invalid_amount", fields: []string{"amount"}},
		{name: "deposit: negative and an unknown field", method: "POST", path: deposit, body: `{"amount":-5,"admin":true}`,
			status: 400, fields: []string{"admin", "amount"}},
		{name: "deposit: negative, exponent", method: "POST", path: deposit, body: `{"amount":-1e3}`, status: 400, fields: []string{"amount"}},
		{name: "deposit: overflowing literal", method: "POST", path: deposit, body: `{"amount":{"amount":99999999999999999999,"currency":"USD"}}`,
			status: 400, fields: []string{"amount.amount"}},
		{name: "deposit: float", method: "POST", path: deposit, body: `{"amount":{"amount":5.5,"currency":"USD"}}`, status: 400, fields: []string{"amount.amount"}},
		{name: "deposit: string", method: "POST", path: deposit, body: `{"amount":"5"}`, status: 400, fields: []string{"amount"}},
		{name: "deposit: null", method: "POST", path: deposit, body: `{"amount":null}`, status: 400, fields: []string{"amount"}},
		{name: "deposit: lower-case currency", method: "POST", path: deposit, body: `{"amount":{"amount":5,"currency":"usd"}}`,
			status: 400, fields: []string{"amount.currency"}},
		{name: "deposit: negative, lower-case currency", method: "POST", path: deposit, body: `{"amount":{"amount":-5,"currency":"usd"}}`,
			status: 400, fields: []string{"amount.amount", "amount.currency"}},
		{name: "deposit: unknown money field", method: "POST", path: deposit, body: `{"amount":{"amount":5,"currency":"USD","fx":1}}`,
			status: 400, fields: []string{"amount.fx"}},
		{name: "deposit: missing amount", method: "POST", path: deposit, body: `{}`, status: 400, fields: []string{"amount"}},
		{name: "deposit: text/plain and empty", method: "POST", path: deposit, body: "", header: map[string]string{"Content-Type": "text/plain"}, status: 415},
		{name: "open: negative initial", method: "POST", path: "/api/v1/accounts", body: `{"owner_id":"x","currency":"USD","initial_balance":{"amount":-1,"currency":"USD"}}`,
			status: 422, reason: "invalid_amount", fields: []string{"initial_balance.amount"}},
		{name: "open: bad currency", method: "POST", path: "/api/v1/accounts", body: `{"owner_id":"x","currency":"DOLLARS"}`, status: 400, fields: []string{"currency"}},
		{name: "open: Idempotency-Key too long", method: "POST", path: "/api/v1/accounts", body: `{"owner_id":"x","currency":"USD"}`,
			header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, status: 400, fields: []string{"Idempotency-Key"}},
		{name: "close: no body", method: "POST", path: "/api/v1/accounts/a1/close"},
		{name: "close: {}", method: "POST", path: "/api/v1/accounts/a1/close", body: `{}`},
		{name: "close: no body, text/plain", method: "POST", path: "/api/v1/accounts/a1/close", header: map[string]string{"Content-Type": "text/plain"}},
		{name: "close: a field", method: "POST", path: "/api/v1/accounts/a1/close", body: `{"force":true}`, status: 400, fields: []string{"force"}},
		{name: "restock: zero", method: "POST", path: "/api/v1/inventory/p1/restock", body: `{"quantity":0}`,
			status: 422, reason: "invalid_quantity", fields: []string{"quantity"}},
		{name: "restock: too many", method: "POST", path: "/api/v1/inventory/p1/restock", body: `{"quantity":1000000001}`,
			status: 422, reason: "invalid_quantity", fields: []string{"quantity"}},
		{name: "create product: negative price", method: "POST", path: "/api/v1/products", body: `{"sku":"X","name":"X","price":{"amount":-1,"currency":"USD"}}`,
			status: 400, fields: []string{"price.amount"}},
		{name: "login: unknown field", method: "POST", path: "/api/v1/auth/token", body: `{"email":"a@b.c","password":"p","remember":true}`,
			status: 400, fields: []string{"remember"}},
		{name: "login: bad tenant", method: "POST", path: "/api/v1/auth/token", body: `{"email":"a@b.c","password":"p","tenant":"No Such"}`,
			status: 400, fields: []string{"tenant"}},
		{name: "register: short password", method: "POST", path: "/api/v1/customers", body: `{"email":"a@b.c","password":"short","name":"A"}`,
			status: 400, fields: []string{"password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{}
			m := mux(t, up)
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.path, body)
			if tc.method == "POST" {
				req.Header.Set("Content-Type", "application/json")
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			// The edge agrees with the document as kin-openapi's own
			// request validation (JSON Schema 2020-12) reads it.
			doc := req.Clone(t.Context())
			doc.Body = io.NopCloser(strings.NewReader(tc.body))
			if err := openapi.ValidateRequest(t.Context(), doc); (err != nil) != (tc.status != 0 && !tc.strict || tc.lenient) {
				t.Errorf("openapi.ValidateRequest says %v", err)
			}
			w := httptest.NewRecorder()
			m.ServeHTTP(w, req)
			if tc.status == 0 {
				if w.Code != http.StatusNoContent || up.calls != 1 {
					t.Fatalf("refused: %d %s", w.Code, w.Body)
				}
				if up.body == nil {
					up.body = []byte{}
				}
				if !bytes.Equal(up.body, []byte(tc.body)) {
					t.Fatalf("upstream got body %q, want %q", up.body, tc.body)
				}
				return
			}
			if up.calls != 0 {
				t.Fatalf("the upstream was called")
			}
			if w.Code != tc.status || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
				t.Fatalf("status %d (%s), want %d: %s", w.Code, w.Header().Get("Content-Type"), tc.status, w.Body)
			}
			var p problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			got := p.fields()
			slices.Sort(got)
			if p.Status != tc.status || p.Reason != tc.reason || !slices.Equal(got, tc.fields) {
				t.Fatalf("problem %s: want status %d, reason %q, fields %q", w.Body, tc.status, tc.reason, tc.fields)
			}
			t.Logf("%s", w.Body)
		})
	}
}

// TestEveryRouteIsDescribed makes sure that no proxied route of the
// default table escapes validation.
func TestEveryRouteIsDescribed(t *testing.T) {
	v, err := validate.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range routes.Default().Routes {
		if rt.Cluster != routes.Local && !v.Describes(rt.Pattern) {
			t.Errorf("%s: the document has no such operation", rt.Pattern)
		}
	}
}

// TestWildcardNames: a route table may name its wildcards otherwise
// than the document.
func TestWildcardNames(t *testing.T) {
	v, err := validate.Default()
	if err != nil {
		t.Fatal(err)
	}
	up := &upstream{}
	m := http.NewServeMux()
	const pattern = "POST /api/v1/inventory/{pid}/restock"
	m.Handle(pattern, v.Handler(pattern, up))
	for _, tc := range []struct {
		path string
		want int
	}{{"/api/v1/inventory/p1/restock", 204}, {"/api/v1/inventory/p%01/restock", 400}} {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest("POST", tc.path, strings.NewReader(`{"quantity":1}`)))
		if w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.path, w.Code, w.Body, tc.want)
		}
	}
}

// walkSchema calls visit with s and every schema under it.
func walkSchema(s *openapi3.Schema, where string, visit func(s *openapi3.Schema, where string)) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(s *openapi3.Schema, where string)
	walk = func(s *openapi3.Schema, where string) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		visit(s, where)
		for name, p := range s.Properties {
			walk(p.Value, where+"."+name)
		}
		if s.Items != nil {
			walk(s.Items.Value, where+"[]")
		}
		if s.AdditionalProperties.Schema != nil {
			walk(s.AdditionalProperties.Schema.Value, where+".*")
		}
		if s.Not != nil {
			walk(s.Not.Value, where+"/not")
		}
		for i, list := range [][]*openapi3.SchemaRef{s.OneOf, s.AllOf, s.AnyOf} {
			for j, sub := range list {
				walk(sub.Value, fmt.Sprintf("%s/%s[%d]", where, []string{"oneOf", "allOf", "anyOf"}[i], j))
			}
		}
	}
	walk(s, where)
}

// TestRequestSchemasNeedNoJSONSchema2020: the edge checks requests with
// kin-openapi's own schema validator, not with its JSON Schema 2020-12
// one (which compiles the schema on every call: 0.1 – 1 ms a request).
// The two agree on the keywords OpenAPI 3.0 has; a request schema using
// one that only 3.1 has needs a look (and a case in TestRequests) first.
func TestRequestSchemasNeedNoJSONSchema2020(t *testing.T) {
	doc, err := openapi.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	check := func(s *openapi3.Schema, where string) {
		walkSchema(s, where, func(s *openapi3.Schema, where string) {
			var only31 []string
			for kw, used := range map[string]bool{
				"const": s.Const != nil, "prefixItems": len(s.PrefixItems) > 0, "contains": s.Contains != nil,
				"patternProperties": len(s.PatternProperties) > 0, "dependentSchemas": len(s.DependentSchemas) > 0,
				"dependentRequired": len(s.DependentRequired) > 0, "propertyNames": s.PropertyNames != nil,
				"unevaluatedItems":      s.UnevaluatedItems.Has != nil || s.UnevaluatedItems.Schema != nil,
				"unevaluatedProperties": s.UnevaluatedProperties.Has != nil || s.UnevaluatedProperties.Schema != nil,
				"if":                    s.If != nil || s.Then != nil || s.Else != nil, "$defs": len(s.Defs) > 0,
				"$dynamicRef": s.DynamicRef != "", "contentSchema": s.ContentSchema != nil,
				"exclusiveMinimum": s.ExclusiveMin != (openapi3.ExclusiveBound{}), "exclusiveMaximum": s.ExclusiveMax != (openapi3.ExclusiveBound{}),
			} {
				if used {
					only31 = append(only31, kw)
				}
			}
			if len(only31) > 0 {
				t.Errorf("%s uses %v", where, only31)
			}
		})
	}
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range append(append(openapi3.Parameters{}, item.Parameters...), op.Parameters...) {
				if p.Value.Schema != nil {
					check(p.Value.Schema.Value, method+" "+path+" "+p.Value.Name)
					n++
				}
			}
			if op.RequestBody != nil {
				for mt, c := range op.RequestBody.Value.Content {
					if mt != "application/json" {
						t.Errorf("%s %s: a %s body (the edge checks JSON only)", method, path, mt)
					}
					check(c.Schema.Value, method+" "+path+" body")
					n++
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no request schemas")
	}
}

// TestExtensions checks the document's x-unprocessable extensions are
// well-formed: a reason and known keywords.
func TestExtensions(t *testing.T) {
	doc, err := openapi.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, ref := range doc.Components.Schemas {
		walkSchema(ref.Value, name, func(s *openapi3.Schema, where string) {
			x, ok := s.Extensions[validate.Extension]
			if !ok {
				return
			}
			n++
			m, ok := x.(map[string]any)
			reason, _ := m["reason"].(string)
			kws, _ := m["keywords"].([]any)
			if !ok || reason == "" || len(kws) == 0 {
				t.Errorf("%s: %s is %v, want {reason, keywords}", where, validate.Extension, x)
			}
			for _, k := range kws {
				if !slices.Contains([]any{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "enum"}, k) {
					t.Errorf("%s: keyword %v", where, k)
				}
			}
		})
	}
	if n == 0 {
		t.Fatalf("no %s in the document", validate.Extension)
	}
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// benchmark measures the validator's cost on requests of pattern
// ("on", against "off", the same loop without it), and that of
// openapi.ValidateRequest (a router lookup and kin-openapi's request
// validation, JSON Schema 2020-12) for comparison.
func benchmark(b *testing.B, pattern string, req *http.Request, body []byte) {
	v, err := validate.Default()
	if err != nil {
		b.Fatal(err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, name := range []string{"off", "on", "openapi.ValidateRequest"} {
		h := http.Handler(next)
		switch name {
		case "on":
			h = v.Handler(pattern, next)
		case "openapi.ValidateRequest":
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := openapi.ValidateRequest(r.Context(), r); err != nil {
					b.Fatal(err)
				}
			})
		}
		b.Run(name, func(b *testing.B) {
			w := &discard{h: http.Header{}}
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			b.ReportAllocs()
			for b.Loop() {
				if body != nil {
					req.Body, _ = req.GetBody()
				}
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkGetProduct: GET /api/v1/products/{id}, what `agora bench
// gateway` drives.
func BenchmarkGetProduct(b *testing.B) {
	req := httptest.NewRequest("GET", product, nil)
	req.SetPathValue("id", "0198c1d2-aaaa-7bbb-8ccc-123456789abc")
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.sig")
	req.Header.Set("X-Request-Id", "0198c1d2-cccc-7bbb-8ccc-123456789abc")
	benchmark(b, "GET /api/v1/products/{id}", req, nil)
}

// BenchmarkPlaceOrder: POST /api/v1/orders with a typical body.
func BenchmarkPlaceOrder(b *testing.B) {
	req := httptest.NewRequest("POST", "/api/v1/orders", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer eyJhbGciOiJFZERTQSJ9.e30.sig")
	req.Header.Set("X-Request-Id", "0198c1d2-cccc-7bbb-8ccc-123456789abc")
	req.Header.Set("Idempotency-Key", "0198c1d2-dddd-7bbb-8ccc-123456789abc")
	req.ContentLength = int64(len(orderBody))
	benchmark(b, "POST /api/v1/orders", req, []byte(orderBody))
}
