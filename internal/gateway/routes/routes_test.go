package routes_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/routes"
)

func TestDefaultTable(t *testing.T) {
	tab := routes.Default()
	for _, c := range []string{"identity", "catalog", "inventory", "ordering", "payments", "shipping", "bff"} {
		if _, ok := tab.Clusters[c]; !ok {
			t.Errorf("cluster %s not declared", c)
		}
	}
	cases := []struct {
		method, path, cluster string
		auth                  routes.Auth
		roles                 []string
		class                 string
	}{
		{"POST", "/api/v1/auth/token", "identity", routes.AuthNone, nil, "auth"},
		{"POST", "/api/v1/customers", "identity", routes.AuthNone, nil, "auth"},
		{"GET", "/api/v1/me", "identity", routes.AuthRequired, nil, "default"},
		{"POST", "/api/v1/accounts", "payments", routes.AuthRequired, []string{"admin", "merchant"}, "write"},
		{"GET", "/api/v1/accounts", "payments", routes.AuthRequired, []string{"admin"}, "default"},
		{"GET", "/api/v1/accounts/a1", "payments", routes.AuthRequired, nil, "default"},
		{"POST", "/api/v1/accounts/a1/deposits", "payments", routes.AuthRequired, nil, "write"},
		{"POST", "/api/v1/transfers", "payments", routes.AuthRequired, nil, "write"},
		{"GET", "/api/v1/products", "catalog", routes.AuthNone, nil, "public"},
		{"GET", "/api/v1/products/p1", "catalog", routes.AuthNone, nil, "public"},
		{"PUT", "/api/v1/products/p1", "catalog", routes.AuthRequired, []string{"merchant", "admin"}, "default"},
		{"GET", "/api/v1/inventory/p1", "inventory", routes.AuthNone, nil, "public"},
		{"POST", "/api/v1/inventory/p1/restock", "inventory", routes.AuthRequired, []string{"merchant", "admin"}, "default"},
		{"POST", "/api/v1/orders", "ordering", routes.AuthRequired, []string{"customer", "admin"}, "write"},
		{"GET", "/api/v1/orders", "ordering", routes.AuthRequired, []string{"customer", "admin"}, "default"},
		{"GET", "/api/v1/sagas/s1", "ordering", routes.AuthRequired, []string{"admin"}, "default"},
		{"GET", "/api/v1/shipments/o1", "shipping", routes.AuthRequired, nil, "default"},
		{"GET", "/bff/web/home", "bff", routes.AuthRequired, nil, "default"},
		{"GET", "/bff/mobile/home", "bff", routes.AuthRequired, nil, "default"},
		{"GET", "/healthz", routes.Local, routes.AuthNone, nil, "ops"},
		{"GET", "/api/v1/events/stream", routes.Local, routes.AuthRequired, []string{"admin"}, "default"},
		{"GET", "/assets/app.js", routes.Local, routes.AuthNone, nil, "public"},
	}
	for _, c := range cases {
		rt, ok := tab.Match(httptest.NewRequest(c.method, c.path, nil))
		if !ok {
			t.Errorf("%s %s: no route", c.method, c.path)
			continue
		}
		if rt.Cluster != c.cluster || rt.Auth != c.auth || !slices.Equal(rt.Roles, c.roles) || rt.RateLimit != c.class {
			t.Errorf("%s %s: got %+v", c.method, c.path, rt)
		}
	}
	if _, ok := tab.Match(httptest.NewRequest("DELETE", "/api/v1/products/p1", nil)); ok {
		t.Error("DELETE /api/v1/products/p1 matched a route")
	}
	if rt, _ := tab.Match(httptest.NewRequest("GET", "/api/v1/events/stream", nil)); rt.Timeout != 0 {
		t.Errorf("event stream timeout = %v, want none", rt.Timeout)
	}
	if rt, _ := tab.Match(httptest.NewRequest("GET", "/api/v1/me", nil)); rt.Timeout != 10*time.Second {
		t.Errorf("default timeout = %v", rt.Timeout)
	}
}

// TestDefaultCoversAPI checks every method and path in the API contract
// (shared/API.md, when present beside the repository) against the table.
func TestDefaultCoversAPI(t *testing.T) {
	// The contract lives beside the repository (../shared/API.md from its
	// root); a clone may sit deeper, so every ancestor is tried.
	var f *os.File
	dir, _ := filepath.Abs(filepath.Join("..", "..", ".."))
	for {
		var err error
		if f, err = os.Open(filepath.Join(dir, "shared", "API.md")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Skip("API contract (shared/API.md) not found beside the repository or above it")
		}
		dir = up
	}
	defer f.Close()
	tab := routes.Default()
	row := regexp.MustCompile(`^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*(/\S+)\s*\|`)
	param := regexp.MustCompile(`\{[a-z_]+\}`)
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		want := m[1] + " " + m[2]
		path := param.ReplaceAllString(m[2], "x1")
		rt, ok := tab.Match(httptest.NewRequest(m[1], path, nil))
		if !ok || rt.Pattern != want {
			t.Errorf("%s: matched %+v", want, rt)
		}
	}
	if n < 25 {
		t.Fatalf("found only %d API rows; did the contract's format change?", n)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/api/v1/events/stream", "/"} {
		if rt, ok := tab.Match(httptest.NewRequest("GET", p, nil)); !ok || rt.Pattern != "GET "+p {
			t.Errorf("GET %s: matched %+v", p, rt)
		}
	}
}

const valid = `
clusters:
  catalog: {max_concurrent: 8, attempt_timeout: 2s, max_retries: 0}
  bff:
rate_limits:
  default:
    client: {rate: 10, period: 1s}
defaults: {timeout: 3s, rate_limit: default}
routes:
  - pattern: GET /p/{id}
    cluster: catalog
    auth: none
  - pattern: POST /p
    cluster: catalog
    roles: [merchant]
    idempotent: true
    timeout: 1s
`

func TestParse(t *testing.T) {
	tab, err := routes.Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	c := tab.Clusters["catalog"]
	if c.MaxConcurrent != 8 || c.AttemptTimeout != 2*time.Second || c.MaxRetries == nil || *c.MaxRetries != 0 {
		t.Fatalf("cluster = %+v", c)
	}
	if b := tab.Clusters["bff"]; b.Name != "bff" || b.MaxRetries != nil {
		t.Fatalf("bff = %+v", b)
	}
	if l := tab.RateLimits["default"].Client; l.Burst != 10 {
		t.Fatalf("burst defaults to rate: %+v", l)
	}
	get, post := tab.Routes[0], tab.Routes[1]
	if get.Method != "GET" || get.Auth != routes.AuthNone || get.Timeout != 3*time.Second || get.RateLimit != "default" {
		t.Fatalf("GET route = %+v", get)
	}
	if post.Auth != routes.AuthRequired || post.Timeout != time.Second || !post.IsIdempotent(httptest.NewRequest("POST", "/p", nil)) {
		t.Fatalf("POST route = %+v", post)
	}
	mux := http.NewServeMux()
	var registered []string
	tab.Register(mux, func(rt *routes.Route) http.Handler {
		registered = append(registered, rt.Pattern)
		return http.NotFoundHandler()
	})
	if len(registered) != 2 {
		t.Fatalf("registered %v", registered)
	}
}

func TestParseRejects(t *testing.T) {
	head := "clusters: {catalog: {}}\nrate_limits: {default: {}}\ndefaults: {rate_limit: default}\n"
	cases := []struct{ name, doc, want string }{
		{"unknown top-level key", head + "colour: red\nroutes: [{pattern: GET /x, cluster: catalog}]", "colour"},
		{"unknown route key", head + "routes: [{pattern: GET /x, cluster: catalog, methd: GET}]", "methd"},
		{"unknown cluster key", "clusters: {catalog: {retries: 3}}\nrate_limits: {default: {}}\ndefaults: {rate_limit: default}\nroutes: [{pattern: GET /x, cluster: catalog}]", "retries"},
		{"duplicate key", head + "routes: [{pattern: GET /x, cluster: catalog, cluster: bff}]", "already defined"},
		{"unknown cluster", head + "routes: [{pattern: GET /x, cluster: catalogue}]", `unknown cluster "catalogue"`},
		{"missing cluster", head + "routes: [{pattern: GET /x}]", "cluster is required"},
		{"reserved cluster", "clusters: {local: {}}\nrate_limits: {default: {}}\ndefaults: {rate_limit: default}\nroutes: [{pattern: GET /x, cluster: local}]", "reserved"},
		{"no method", head + "routes: [{pattern: /x, cluster: catalog}]", "must start with a method"},
		{"bad pattern", head + "routes: [{pattern: \"GET /x/{id\", cluster: catalog}]", "route 1"},
		{"conflicting patterns", head + "routes: [{pattern: GET /x, cluster: catalog}, {pattern: GET /x, cluster: catalog}]", "route 2"},
		{"bad auth", head + "routes: [{pattern: GET /x, cluster: catalog, auth: maybe}]", `not "maybe"`},
		{"roles without auth", head + "routes: [{pattern: GET /x, cluster: catalog, auth: none, roles: [admin]}]", "roles need auth"},
		{"unknown role", head + "routes: [{pattern: GET /x, cluster: catalog, roles: [root]}]", `unknown role "root"`},
		{"unknown class", head + "routes: [{pattern: GET /x, cluster: catalog, rate_limit: fast}]", `unknown rate limit class "fast"`},
		{"bad limit", "clusters: {catalog: {}}\nrate_limits: {default: {client: {rate: -1, period: 1s}}}\ndefaults: {rate_limit: default}\nroutes: [{pattern: GET /x, cluster: catalog}]", "rate and period must be positive"},
		{"negative timeout", head + "routes: [{pattern: GET /x, cluster: catalog, timeout: -1s}]", "timeout must not be negative"},
		{"wrong type", head + "routes: [{pattern: GET /x, cluster: catalog, idempotent: sometimes}]", "idempotent"},
		{"no routes", head, "no routes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := routes.Parse([]byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(path, routes.DefaultYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	tab, err := routes.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Routes) != len(routes.Default().Routes) {
		t.Fatalf("loaded %d routes", len(tab.Routes))
	}
	if _, err := routes.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestIsIdempotentAndPermits(t *testing.T) {
	rt := &routes.Route{Roles: []string{"merchant", "admin"}}
	req := func(method, key string) *http.Request {
		r := httptest.NewRequest(method, "/", nil)
		if key != "" {
			r.Header.Set(routes.IdempotencyKeyHeader, key)
		}
		return r
	}
	for _, c := range []struct {
		r    *http.Request
		want bool
	}{
		{req("GET", ""), true}, {req("HEAD", ""), true}, {req("POST", ""), false},
		{req("POST", "k1"), true}, {req("PUT", ""), false}, {req("DELETE", ""), false},
	} {
		if got := rt.IsIdempotent(c.r); got != c.want {
			t.Errorf("%s key=%q: idempotent %v", c.r.Method, c.r.Header.Get(routes.IdempotencyKeyHeader), got)
		}
	}
	no := false
	if (&routes.Route{Idempotent: &no}).IsIdempotent(req("GET", "")) {
		t.Error("override ignored")
	}
	if !rt.Permits([]string{"customer", "admin"}) || rt.Permits([]string{"customer"}) || rt.Permits(nil) {
		t.Error("Permits is not any-of")
	}
	if !(&routes.Route{}).Permits(nil) {
		t.Error("a route without roles refused")
	}
}
