package routes_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
)

// tokens authenticates "Bearer <role>" as a caller with that role.
type tokens struct{}

func (tokens) Authenticate(r *http.Request) (*auth.Claims, error) {
	tok, err := auth.BearerToken(r)
	if err != nil {
		return nil, err
	}
	if tok == "bad" {
		return nil, auth.ErrInvalidToken
	}
	c := &auth.Claims{Tenant: "demo", Roles: []string{tok}}
	c.Subject = "u-" + tok
	return c, nil
}

func TestGuard(t *testing.T) {
	var reached *auth.Claims
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached, _ = auth.ClaimsFrom(r.Context())
		w.WriteHeader(http.StatusTeapot)
	})
	g := routes.Default().Guard("catalog", tokens{}, next)
	for _, c := range []struct {
		method, path, token string
		want                int
		caller              string
	}{
		{"GET", "/api/v1/products", "", http.StatusTeapot, ""},
		{"GET", "/api/v1/products", "customer", http.StatusTeapot, "u-customer"},
		{"GET", "/api/v1/products", "bad", http.StatusTeapot, ""}, // a bad token on a public route: anonymous
		{"POST", "/api/v1/products", "", http.StatusUnauthorized, ""},
		{"POST", "/api/v1/products", "bad", http.StatusUnauthorized, ""},
		{"POST", "/api/v1/products", "customer", http.StatusForbidden, ""},
		{"POST", "/api/v1/products", "merchant", http.StatusTeapot, "u-merchant"},
		{"PUT", "/api/v1/products/p1", "admin", http.StatusTeapot, "u-admin"},
		{"DELETE", "/api/v1/products/p1", "admin", http.StatusMethodNotAllowed, ""},
		{"POST", "/api/v1/orders", "customer", http.StatusNotFound, ""}, // another cluster's route
		{"GET", "/internal/anything", "admin", http.StatusNotFound, ""},
	} {
		reached = nil
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s as %q: %d, want %d", c.method, c.path, c.token, rec.Code, c.want)
		}
		if reached != nil && reached.Subject != c.caller {
			t.Errorf("%s %s as %q: the handler saw %q, want %q", c.method, c.path, c.token, reached.Subject, c.caller)
		}
		if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without a challenge", c.method, c.path)
		}
		if rec.Code >= 400 && rec.Code != http.StatusTeapot && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d as %q, want problem+json", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	// A service's own internal route, public.
	g = routes.Default().Guard("inventory", tokens{}, next, &routes.Route{Pattern: "GET /internal/v1/levels", Auth: routes.AuthNone})
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest("GET", "/internal/v1/levels", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("internal route: %d", rec.Code)
	}
}
