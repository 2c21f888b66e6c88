package gateway_test

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agora-commerce/agora/internal/gateway"
	"github.com/agora-commerce/agora/internal/gateway/ratelimit"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
)

// fakeUpstream stands for every service: it counts the requests that
// reach it and keeps the last body of each method and path.
type fakeUpstream struct {
	mu     sync.Mutex
	calls  int
	bodies map[string]string
}

func (u *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.calls++
	if u.bodies == nil {
		u.bodies = map[string]string{}
	}
	u.bodies[r.Method+" "+r.URL.Path] = string(b)
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"id":"o1","status":"Pending"}`))
}

// seen returns how many requests reached u, and the last body of
// method and path (ok false if none).
func (u *fakeUpstream) seen(method, path string) (calls int, body string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	body, ok = u.bodies[method+" "+path]
	return u.calls, body, ok
}

type edge struct {
	t        *testing.T
	url      string
	up       *fakeUpstream
	customer string // a customer's token
}

// newEdge runs a gateway (Validate as given) in front of a fake upstream
// serving every cluster.
func newEdge(t *testing.T, validate bool) *edge {
	t.Helper()
	up := &fakeUpstream{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	reg := registry.NewStatic()
	for name := range routes.Default().Clusters {
		if err := reg.Register(name, registry.Instance{ID: name + "-0", URL: upstream.URL, Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key, auth.Options{})
	gw, err := gateway.New(gateway.Config{Registry: reg, Verifier: auth.NewVerifier(signer.Keys(), auth.Options{}),
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}), Validate: validate})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	token, err := signer.Issue(auth.Claims{Tenant: "demo", Roles: []string{auth.RoleCustomer},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "c1"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &edge{t: t, url: srv.URL, up: up, customer: token}
}

type answer struct {
	status int
	header http.Header
	raw    string
	// The problem's fields.
	Reason string `json:"reason"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (a answer) fields() []string {
	var out []string
	for _, e := range a.Errors {
		out = append(out, e.Field)
	}
	slices.Sort(out)
	return out
}

func (e *edge) do(method, path, token, body string, header ...string) answer {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a)
	return a
}

const validOrder = `{"items":[{"product_id":"p1","quantity":2}],` +
	`"shipping_address":{"street":"1 Main St","city":"Springfield","state":"IL","zip_code":"62701","country":"US"},` +
	`"payment_account_id":"acct-1"}`

// TestInvalidRequestsStopAtTheEdge: a request the OpenAPI document
// rejects gets the status its service would give, with the offending
// fields, and never reaches the upstream; a valid one passes with its
// body intact.
func TestInvalidRequestsStopAtTheEdge(t *testing.T) {
	e := newEdge(t, true)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		reason                   string
		fields                   []string
	}{
		{"unknown field", "POST", "/api/v1/orders", strings.Replace(validOrder, `"payment_account_id"`, `"admin":true,"payment_account_id"`, 1),
			400, "", []string{"admin"}},
		{"wrong type", "POST", "/api/v1/orders", strings.Replace(validOrder, `"quantity":2`, `"quantity":"2"`, 1),
			400, "", []string{"items[0].quantity"}},
		{"negative quantity", "POST", "/api/v1/orders", strings.Replace(validOrder, `"quantity":2`, `"quantity":-1`, 1),
			400, "", []string{"items[0].quantity"}},
		{"missing required field", "POST", "/api/v1/orders", strings.Replace(validOrder, `"zip_code":"62701",`, ``, 1),
			400, "", []string{"shipping_address.zip_code"}},
		{"several", "POST", "/api/v1/orders", `{"items":[{"product_id":"p1","quantity":0}],"shipping_address":{"street":"x","city":"y","zip_code":"z","country":"US","floor":2}}`,
			400, "", []string{"items[0].quantity", "payment_account_id", "shipping_address.floor"}},
		{"bad currency", "POST", "/api/v1/accounts/a1/deposits", `{"amount":{"amount":5,"currency":"usd"}}`,
			400, "", []string{"amount.currency"}},
		{"negative amount", "POST", "/api/v1/accounts/a1/deposits", `{"amount":{"amount":-5,"currency":"USD"}}`,
			422, "invalid_amount", []string{"amount.amount"}},
		{"zero amount, bare", "POST", "/api/v1/accounts/a1/withdrawals", `{"amount":0}`,
			422, "invalid_amount", []string{"amount"}},
		{"malformed JSON", "POST", "/api/v1/orders", `{"items":`, 400, "", nil},
		{"bad limit", "GET", "/api/v1/orders?limit=0", "", 400, "", []string{"limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _, _ := e.up.seen("", "")
			a := e.do(tc.method, tc.path, e.customer, tc.body)
			if a.status != tc.status || !strings.HasPrefix(a.header.Get("Content-Type"), "application/problem+json") ||
				a.Reason != tc.reason || !slices.Equal(a.fields(), tc.fields) {
				t.Fatalf("%d %s: want %d, reason %q, fields %q", a.status, a.raw, tc.status, tc.reason, tc.fields)
			}
			if a.header.Get("X-Request-Id") == "" || !strings.Contains(a.raw, `"request_id"`) {
				t.Errorf("no request ID: %v %s", a.header, a.raw)
			}
			if after, _, _ := e.up.seen("", ""); after != before {
				t.Fatalf("the upstream was called")
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		a := e.do("POST", "/api/v1/orders", e.customer, validOrder, "Idempotency-Key", "k-1")
		calls, body, ok := e.up.seen("POST", "/api/v1/orders")
		if a.status != http.StatusAccepted || !ok || body != validOrder {
			t.Fatalf("%d %s; the upstream got %q (%v)", a.status, a.raw, body, ok)
		}
		// A repeat is answered by the idempotency store, after validation.
		if a := e.do("POST", "/api/v1/orders", e.customer, validOrder, "Idempotency-Key", "k-1"); a.status != http.StatusAccepted ||
			a.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeat: %d %v %s", a.status, a.header, a.raw)
		}
		if after, _, _ := e.up.seen("", ""); after != calls {
			t.Fatalf("a repeat reached the upstream")
		}
	})

	t.Run("authentication comes first", func(t *testing.T) {
		before, _, _ := e.up.seen("", "")
		bad := `{"quantity":-1,"extra":true}`
		if a := e.do("POST", "/api/v1/orders", "", bad); a.status != http.StatusUnauthorized {
			t.Errorf("anonymous: %d %s", a.status, a.raw)
		}
		if a := e.do("POST", "/api/v1/orders", "not-a-token", bad); a.status != http.StatusUnauthorized {
			t.Errorf("bad token: %d %s", a.status, a.raw)
		}
		// Restocking is for merchants and admins.
		if a := e.do("POST", "/api/v1/inventory/p1/restock", e.customer, bad); a.status != http.StatusForbidden {
			t.Errorf("a customer: %d %s", a.status, a.raw)
		}
		if after, _, _ := e.up.seen("", ""); after != before {
			t.Fatalf("the upstream was called")
		}
	})
}

// TestValidationIsSwitchable: without Config.Validate the upstream
// judges every request itself.
func TestValidationIsSwitchable(t *testing.T) {
	e := newEdge(t, false)
	bad := strings.Replace(validOrder, `"quantity":2`, `"quantity":-1`, 1)
	if a := e.do("POST", "/api/v1/orders", e.customer, bad); a.status != http.StatusAccepted {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if _, body, ok := e.up.seen("POST", "/api/v1/orders"); !ok || body != bad {
		t.Fatalf("the upstream got %q (%v)", body, ok)
	}
}
