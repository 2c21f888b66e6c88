package routes_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/routes"
)

// FuzzMatch matches arbitrary methods and request targets (encoded dots
// and slashes, doubled slashes, NULs) against the default table: nothing
// panics; a match is one of the table's routes, on a declared cluster (or
// local), for the request's method (or GET for a HEAD); the service that
// cluster names, which routes among its own routes only (Guard), picks
// the same route; and a target ServeMux would clean picks the route of
// its clean form.
func FuzzMatch(f *testing.F) {
	tab := routes.Default()
	inTable := map[*routes.Route]bool{}
	byCluster := map[string]*http.ServeMux{}
	for _, rt := range tab.Routes {
		inTable[rt] = true
		mux := byCluster[rt.Cluster]
		if mux == nil {
			mux = http.NewServeMux()
			byCluster[rt.Cluster] = mux
		}
		mux.Handle(rt.Pattern, http.NotFoundHandler())
	}
	for _, s := range []struct{ method, target string }{
		{"GET", "/api/v1/products"}, {"GET", "/api/v1/products/p-1"}, {"POST", "/api/v1/orders"},
		{"HEAD", "/api/v1/products/p-1"}, {"PUT", "/api/v1/products/p-1"}, {"DELETE", "/api/v1/products/p-1"},
		{"GET", "/api/v1/products/%2e%2e/orders"}, {"GET", "/api/v1/products/..%2f..%2fops/audit"},
		{"GET", "/api/v1//orders"}, {"GET", "//api/v1/orders"}, {"GET", "/api/v1/orders/%00"},
		{"GET", "/api/v1/ops/../orders"}, {"POST", "/api/v1/accounts/a%2Fb/deposits"}, {"get", "/api/v1/products"},
		{"GET", "/api/v1/inventory/p-1/updates?x=1"}, {"GET", "*"}, {"CONNECT", "example.com:443"},
		{"GET", "http://example.com/api/v1/products"}, {"OPTIONS", "/"}, {"GET", "/api/v1/products/"},
		{"GET", "/bff/web/home"}, {"GET", "/api/v1/ops/traces/%2e"}, {"GET", "/./healthz"}, {"", "/"},
	} {
		f.Add(s.method, s.target)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // net/http answers 400 before any route is looked up
		}
		r := &http.Request{Method: method, URL: u, Host: "agora.test", Header: http.Header{}, RequestURI: target}
		rt, ok := tab.Match(r)
		if !ok {
			return
		}
		if !inTable[rt] {
			t.Fatalf("%s %s: matched %q, which is not in the table", method, target, rt.Pattern)
		}
		if _, declared := tab.Clusters[rt.Cluster]; !declared && rt.Cluster != routes.Local {
			t.Fatalf("%s %s: matched %q of undeclared cluster %q", method, target, rt.Pattern, rt.Cluster)
		}
		if rt.Method != method && !(rt.Method == http.MethodGet && method == http.MethodHead) {
			t.Fatalf("%s %s: matched %q, for another method", method, target, rt.Pattern)
		}
		if _, p := byCluster[rt.Cluster].Handler(r); p != rt.Pattern {
			t.Fatalf("%s %s: the gateway routes it by %q to %s, whose own routes pick %q", method, target, rt.Pattern, rt.Cluster, p)
		}
		if h, _ := byCluster[rt.Cluster].Handler(r); h != nil {
			// A target ServeMux redirects (cleaned) is matched as the one it redirects to.
			w := &headerWriter{h: http.Header{}}
			h.ServeHTTP(w, r)
			if loc := w.h.Get("Location"); w.code == http.StatusMovedPermanently || w.code == http.StatusTemporaryRedirect || w.code == http.StatusPermanentRedirect {
				lu, err := url.Parse(loc)
				if err != nil {
					t.Fatalf("%s %s: redirected to %q: %v", method, target, loc, err)
				}
				clean := &http.Request{Method: method, URL: u.ResolveReference(lu), Host: r.Host, Header: http.Header{}}
				if rt2, ok := tab.Match(clean); !ok || rt2 != rt {
					t.Fatalf("%s %s: matched %q, but its clean form %s matches %v", method, target, rt.Pattern, clean.URL, rt2)
				}
			}
		}
	})
}

// headerWriter keeps the status and headers of an answer.
type headerWriter struct {
	h    http.Header
	code int
}

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerWriter) WriteHeader(code int)        { w.code = code }
