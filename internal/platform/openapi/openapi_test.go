package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"go.yaml.in/yaml/v4"

	"github.com/agora-commerce/agora/internal/platform/openapi"
)

// endpoint is one row of shared/API.md: method, path and who may call it
// (the x-roles the document must give).
type endpoint struct {
	method, path string
	roles        []string
}

// apiEndpoints is every endpoint of shared/API.md (its tables, and the
// operations it lists in prose), plus the JWKS document identity serves.
var apiEndpoints = []endpoint{
	// Identity
	{"POST", "/api/v1/auth/token", []string{"anyone"}},
	{"POST", "/api/v1/auth/refresh", []string{"anyone"}},
	{"POST", "/api/v1/auth/logout", []string{"any"}},
	{"POST", "/api/v1/auth/session", []string{"anyone"}},
	{"DELETE", "/api/v1/auth/session", []string{"anyone"}},
	{"POST", "/api/v1/customers", []string{"anyone"}},
	{"GET", "/api/v1/me", []string{"any"}},
	{"GET", "/.well-known/jwks.json", []string{"anyone"}},
	// Payments
	{"POST", "/api/v1/accounts", []string{"admin", "merchant"}},
	{"GET", "/api/v1/accounts/{id}", []string{"owner", "admin"}},
	{"GET", "/api/v1/accounts", []string{"admin"}},
	{"POST", "/api/v1/accounts/{id}/deposits", []string{"owner", "admin"}},
	{"POST", "/api/v1/accounts/{id}/withdrawals", []string{"owner", "admin"}},
	{"POST", "/api/v1/accounts/{id}/close", []string{"owner", "admin"}},
	{"GET", "/api/v1/accounts/{id}/events", []string{"owner", "admin"}},
	{"POST", "/api/v1/transfers", []string{"owner", "admin"}},
	{"GET", "/api/v1/transfers/{id}", []string{"owner", "admin"}},
	// Catalog, inventory
	{"GET", "/api/v1/products", []string{"anyone"}},
	{"GET", "/api/v1/products/{id}", []string{"anyone"}},
	{"POST", "/api/v1/products", []string{"merchant", "admin"}},
	{"PUT", "/api/v1/products/{id}", []string{"merchant", "admin"}},
	{"GET", "/api/v1/inventory/{product_id}", []string{"anyone"}},
	{"POST", "/api/v1/inventory/{product_id}/restock", []string{"merchant", "admin"}},
	// Ordering and checkout
	{"POST", "/api/v1/orders", []string{"customer", "admin"}}, // an admin orders on a customer's behalf (an extension)
	{"GET", "/api/v1/orders/{id}", []string{"owner", "admin"}},
	{"GET", "/api/v1/orders", []string{"customer", "admin"}},
	{"POST", "/api/v1/orders/{id}/cancel", []string{"owner", "admin"}},
	{"GET", "/api/v1/orders/{id}/updates", []string{"owner", "admin"}},
	{"GET", "/api/v1/inventory/{product_id}/updates", []string{"anyone"}},
	{"GET", "/api/v1/sagas/{id}", []string{"admin"}},
	{"POST", "/api/v1/sagas/{id}/retry", []string{"admin"}},
	{"GET", "/api/v1/shipments/{order_id}", []string{"owner", "admin"}},
	// Backends for frontends
	{"GET", "/bff/web/home", []string{"any"}},
	{"GET", "/bff/mobile/home", []string{"any"}},
	// Operations
	{"GET", "/healthz", []string{"anyone"}},
	{"GET", "/readyz", []string{"anyone"}},
	{"GET", "/metrics", []string{"anyone"}},
	{"GET", "/openapi.json", []string{"anyone"}},
	{"GET", "/api/v1/events/stream", []string{"admin"}},
	{"GET", "/api/v1/ops/traces", []string{"admin"}},
	{"GET", "/api/v1/ops/traces/{trace_id}", []string{"admin"}},
	{"GET", "/api/v1/ops/metrics/series", []string{"admin"}},
	// The operations console's API (internal/ops).
	{"GET", "/api/v1/ops/overview", []string{"admin"}},
	{"GET", "/api/v1/ops/log", []string{"admin"}},
	{"GET", "/api/v1/ops/log/stream", []string{"admin"}},
	{"GET", "/api/v1/ops/streams/{stream_id}", []string{"admin"}},
	{"GET", "/api/v1/ops/sagas", []string{"admin"}},
	{"GET", "/api/v1/ops/processing", []string{"admin"}},
	{"POST", "/api/v1/ops/projections/{name}/rebuild", []string{"admin"}},
	{"GET", "/api/v1/ops/dead-letters", []string{"admin"}},
	{"POST", "/api/v1/ops/dead-letters/{id}/redeliver", []string{"admin"}},
	{"GET", "/api/v1/ops/services", []string{"admin"}},
	{"GET", "/api/v1/ops/audit", []string{"admin"}},
	{"GET", "/", []string{"anyone"}},
}

func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// operations returns every operation of doc by "METHOD path".
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	return ops
}

func TestDocumentIsValidOpenAPI31(t *testing.T) {
	ctx := context.Background()
	doc := load(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	// Validate again with every check kin-openapi offers turned on.
	if err := doc.Validate(ctx, openapi3.IsOpenAPI31OrLater(), openapi3.EnableExamplesValidation(),
		openapi3.EnableSchemaDefaultsValidation(), openapi3.EnableSchemaPatternValidation(),
		openapi3.EnableMultiError()); err != nil {
		t.Fatalf("document does not validate:\n%v", err)
	}
	if !json.Valid(openapi.Document()) {
		t.Fatal("Document() is not JSON")
	}
	if !bytes.HasPrefix(openapi.Document(), []byte(`{"openapi":"3.1.0","info":`)) {
		t.Errorf("Document() does not keep the YAML's key order: %.60s", openapi.Document())
	}
}

// TestDocumentIsTheYAML checks the YAML-to-JSON conversion: Document()
// holds exactly what openapi.yaml says.
func TestDocumentIsTheYAML(t *testing.T) {
	src, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var fromYAML any
	if err := yaml.Unmarshal(src, &fromYAML); err != nil {
		t.Fatal(err)
	}
	// Normalise numbers (YAML decodes int, JSON float64) through JSON.
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(openapi.Document(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("Document() differs from openapi.yaml")
	}
}

func TestEveryAPIEndpointIsDocumented(t *testing.T) {
	doc := load(t)
	ops := operations(doc)
	listed := map[string]bool{}
	for _, e := range apiEndpoints {
		key := e.method + " " + e.path
		listed[key] = true
		op := ops[key]
		if op == nil {
			t.Errorf("%s is missing from the document", key)
			continue
		}
		roles := xRoles(op)
		if !slices.Equal(roles, e.roles) {
			t.Errorf("%s: x-roles %v, want %v (API.md)", key, roles, e.roles)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if wantPublic := slices.Equal(e.roles, []string{"anyone"}); public != wantPublic {
			t.Errorf("%s: public (security: []) is %v, want %v", key, public, wantPublic)
		}
	}
	for key := range ops {
		if !listed[key] {
			t.Errorf("%s is in the document but not in API.md's list (add it to the test and API.md)", key)
		}
	}
	if _, ok := doc.Components.SecuritySchemes["bearerAuth"]; !ok || len(doc.Security) != 1 {
		t.Error("the document does not require bearerAuth by default")
	} else if s := doc.Components.SecuritySchemes["bearerAuth"].Value; s.Type != "http" || s.Scheme != "bearer" || s.BearerFormat != "JWT" {
		t.Errorf("bearerAuth is %+v", s)
	}
}

func xRoles(op *openapi3.Operation) []string {
	raw, _ := op.Extensions["x-roles"].([]any)
	var roles []string
	for _, r := range raw {
		s, _ := r.(string)
		roles = append(roles, s)
	}
	return roles
}

func TestOperationIDsAreUnique(t *testing.T) {
	seen := map[string]string{}
	for key, op := range operations(load(t)) {
		switch {
		case op.OperationID == "":
			t.Errorf("%s has no operationId", key)
		case seen[op.OperationID] != "":
			t.Errorf("%s and %s share operationId %q", key, seen[op.OperationID], op.OperationID)
		}
		seen[op.OperationID] = key
		if op.Summary == "" {
			t.Errorf("%s has no summary", key)
		}
	}
}

// TestRequestBodiesRejectUnknownFields checks that every object a request
// body may hold, at any depth, forbids additional properties.
func TestRequestBodiesRejectUnknownFields(t *testing.T) {
	n := 0
	for key, op := range operations(load(t)) {
		if op.RequestBody == nil {
			continue
		}
		for ct, mt := range op.RequestBody.Value.Content {
			if mt.Schema == nil {
				t.Errorf("%s: %s body has no schema", key, ct)
				continue
			}
			n++
			walkObjects(mt.Schema, key+" body", map[*openapi3.Schema]bool{}, func(where string, s *openapi3.Schema) {
				if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has || s.AdditionalProperties.Schema != nil {
					t.Errorf("%s: object allows additional properties", where)
				}
			})
		}
	}
	if n < 13 {
		t.Fatalf("only %d request bodies found", n)
	}
}

// walkObjects calls f for every object schema reachable from ref.
func walkObjects(ref *openapi3.SchemaRef, where string, seen map[*openapi3.Schema]bool, f func(string, *openapi3.Schema)) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if s.Type.Includes("object") || len(s.Properties) > 0 {
		f(where, s)
	}
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		walkObjects(s.Properties[name], where+"."+name, seen, f)
	}
	walkObjects(s.Items, where+"[]", seen, f)
	for i, sub := range slices.Concat(s.OneOf, s.AnyOf, s.AllOf) {
		walkObjects(sub, where+"#"+strconv.Itoa(i), seen, f)
	}
}

// TestOperationsFollowTheConventions checks the cross-cutting rules of
// API.md on every operation: a success response with a schema, errors as
// problem+json, X-Request-Id on every response, 401/403 where a token is
// needed, 413/415 where a body is read, Idempotency-Key and its 422 on
// every POST, 504 where Agora-Min-Position is honoured, 429 on the API.
func TestOperationsFollowTheConventions(t *testing.T) {
	doc := load(t)
	for key, op := range operations(doc) {
		method, path, _ := strings.Cut(key, " ")
		has := func(code string) bool { return op.Responses.Value(code) != nil }
		var success bool
		for code, rr := range op.Responses.Map() {
			r := rr.Value
			if _, ok := r.Headers["X-Request-Id"]; !ok {
				t.Errorf("%s %s: no X-Request-Id header", key, code)
			}
			if code == "304" {
				continue
			}
			if strings.HasPrefix(code, "2") {
				success = true
				for ct, mt := range r.Content {
					if mt.Schema == nil {
						t.Errorf("%s %s %s: no schema", key, code, ct)
					}
				}
				if len(r.Content) == 0 {
					t.Errorf("%s %s: no content", key, code)
				}
				continue
			}
			if key == "GET /readyz" && code == "503" {
				continue
			}
			mt := r.Content["application/problem+json"]
			if len(r.Content) != 1 || mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" {
				t.Errorf("%s %s: not a problem+json Problem", key, code)
			}
		}
		if !success {
			t.Errorf("%s: no success response", key)
		}
		if !has("default") {
			t.Errorf("%s: no default (problem) response", key)
		}
		public := op.Security != nil && len(*op.Security) == 0
		if !public && (!has("401") || !has("403")) {
			t.Errorf("%s: needs a token but lists no 401/403", key)
		}
		if op.RequestBody != nil && (!has("400") || !has("413") || !has("415")) {
			t.Errorf("%s: reads a body but lacks 400/413/415", key)
		}
		params := map[string]bool{}
		waits := false // a read-your-writes wait, which can time out
		for _, p := range op.Parameters {
			params[p.Value.Name] = true
			waits = waits || p.Ref == "#/components/parameters/MinPosition"
		}
		if method == "POST" && (!params["Idempotency-Key"] || !has("422")) {
			t.Errorf("%s: a POST without Idempotency-Key or 422", key)
		}
		if waits && !has("504") {
			t.Errorf("%s: waits for Agora-Min-Position but lists no 504", key)
		}
		if params["Agora-Min-Position"] && !has("400") {
			t.Errorf("%s: reads Agora-Min-Position but lists no 400", key)
		}
		if (strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/bff/")) && !has("429") {
			t.Errorf("%s: no 429", key)
		}
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(openapi.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !json.Valid(body) || !bytes.Equal(body, openapi.Document()) {
		t.Fatal("GET /openapi.json is not Document()")
	}
	tag := res.Header.Get("ETag")
	if !strings.HasPrefix(tag, `"`) || !strings.Contains(res.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("not cacheable: ETag %q, Cache-Control %q", tag, res.Header.Get("Cache-Control"))
	}
	for _, inm := range []string{tag, "W/" + tag, `"other", ` + tag, "*"} {
		req, _ := http.NewRequest("GET", srv.URL+"/openapi.json", nil)
		req.Header.Set("If-None-Match", inm)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified || len(b) != 0 || res.Header.Get("ETag") != tag {
			t.Errorf("If-None-Match %s: %d, %d bytes, ETag %q", inm, res.StatusCode, len(b), res.Header.Get("ETag"))
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/openapi.json", nil)
	req.Header.Set("If-None-Match", `"stale"`)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusOK {
		t.Errorf("stale If-None-Match: %d", res.StatusCode)
	}
	if res, err := http.Head(srv.URL + "/openapi.json"); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusOK || res.ContentLength != int64(len(openapi.Document())) {
		t.Errorf("HEAD: %d, length %d", res.StatusCode, res.ContentLength)
	}
	res, err = http.Post(srv.URL+"/openapi.json", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("POST: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

// TestValidators checks the helpers on hand-made exchanges, so that the
// end-to-end test's verdicts mean something.
func TestValidators(t *testing.T) {
	ctx := context.Background()
	req := func(method, path, body string) *http.Request {
		var r *http.Request
		if body == "" {
			r = httptest.NewRequest(method, "http://agora.test"+path, nil)
		} else {
			r = httptest.NewRequest(method, "http://agora.test"+path, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
		}
		return r
	}
	good := req("POST", "/api/v1/accounts/a1/deposits", `{"amount":{"amount":5,"currency":"USD"}}`)
	if err := openapi.ValidateRequest(ctx, good); err != nil {
		t.Errorf("valid deposit: %v", err)
	}
	if b, _ := io.ReadAll(good.Body); string(b) != `{"amount":{"amount":5,"currency":"USD"}}` {
		t.Errorf("ValidateRequest did not put the body back: %q", b)
	}
	for name, r := range map[string]*http.Request{
		"unknown field":   req("POST", "/api/v1/accounts/a1/deposits", `{"amount":5,"admin":true}`),
		"negative amount": req("POST", "/api/v1/accounts/a1/deposits", `{"amount":{"amount":-5,"currency":"USD"}}`),
		"bad currency":    req("POST", "/api/v1/accounts", `{"owner_id":"x","currency":"usd"}`),
		"bad limit":       req("GET", "/api/v1/accounts?limit=501", ""),
		"missing body":    req("POST", "/api/v1/orders", ""),
	} {
		if err := openapi.ValidateRequest(ctx, r); err == nil {
			t.Errorf("%s: ValidateRequest accepted it", name)
		}
	}
	if err := openapi.ValidateRequest(ctx, req("GET", "/api/v1/nothing", "")); !errors.Is(err, routers.ErrPathNotFound) {
		t.Errorf("unknown path: %v", err)
	}
	if err := openapi.ValidateRequest(ctx, req("DELETE", "/api/v1/accounts/a1", "")); !errors.Is(err, routers.ErrMethodNotAllowed) {
		t.Errorf("unknown method: %v", err)
	}

	get := req("GET", "/api/v1/transfers/t1", "")
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}
	ok := `{"id":"t1","status":"Pending","from_account_id":"a","to_account_id":"b","amount":{"amount":5,"currency":"USD"},"saga_id":"transfer-t1"}`
	if err := openapi.ValidateResponse(ctx, get, 200, h, []byte(ok)); err != nil {
		t.Errorf("valid transfer: %v", err)
	}
	problem := http.Header{"Content-Type": {"application/problem+json"}, "X-Request-Id": {"r1"}}
	limited := problem.Clone()
	limited.Set("Retry-After", "3")
	limited.Set("RateLimit-Limit", "20")
	limited.Set("RateLimit-Remaining", "0")
	limited.Set("RateLimit-Reset", "3")
	tooMany := `{"type":"/problems/rate-limited","title":"Too Many Requests","status":429,"reason":"rate_limited","request_id":"r1"}`
	if err := openapi.ValidateResponse(ctx, get, 429, limited, []byte(tooMany)); err != nil {
		t.Errorf("valid 429: %v", err)
	}
	for name, c := range map[string]struct {
		status int
		header http.Header
		body   string
	}{
		"bad status value":        {200, h, strings.Replace(ok, "Pending", "Lost", 1)},
		"float amount":            {200, h, strings.Replace(ok, `"amount":5`, `"amount":5.5`, 1)},
		"missing field":           {200, h, `{"id":"t1","status":"Pending"}`},
		"no request id":           {200, http.Header{"Content-Type": {"application/json"}}, ok},
		"wrong media type":        {200, http.Header{"Content-Type": {"text/plain"}, "X-Request-Id": {"r1"}}, ok},
		"problem as json":         {404, h, `{"type":"about:blank","title":"Not Found","status":404}`},
		"problem no title":        {404, problem, `{"type":"about:blank","status":404}`},
		"429 without Retry-After": {429, problem, tooMany},
		"bad RateLimit-Remaining": {429, func() http.Header { h := limited.Clone(); h.Set("RateLimit-Remaining", "-1"); return h }(), tooMany},
	} {
		if err := openapi.ValidateResponse(ctx, get, c.status, c.header, []byte(c.body)); err == nil {
			t.Errorf("%s: ValidateResponse accepted it", name)
		}
	}
}
