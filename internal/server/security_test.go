package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/identity"
	idapp "github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/server"
)

// customer registers a customer in tenant (through the API), funds its
// account with balance (as the admin) and returns a client acting as it
// and its account ID.
func (w *world) customer(tenant string, balance int64) (*client, string) {
	w.t.Helper()
	email := "c-" + uuid.NewString()[:8] + "@agora.test"
	r := w.do("POST", "/api/v1/customers", map[string]any{"email": email, "password": "password-123", "name": "C", "tenant": tenant},
		"Authorization", "")
	if r.status != http.StatusCreated {
		w.t.Fatalf("register: %d %s", r.status, r.raw)
	}
	acct := r.body["account_id"].(string)
	r = w.do("POST", "/api/v1/auth/token", map[string]any{"email": email, "password": "password-123", "tenant": tenant}, "Authorization", "")
	if r.status != http.StatusOK {
		w.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	c := w.as(r.body["access_token"].(string))
	if balance > 0 {
		if r := w.do("POST", "/api/v1/accounts/"+acct+"/deposits", map[string]any{"amount": usd(balance)}); r.status != http.StatusOK {
			w.t.Fatalf("fund: %d %s", r.status, r.raw)
		}
		w.mu.Lock()
		w.accounts = append(w.accounts, acct)
		w.funded += balance
		w.mu.Unlock()
	}
	return c, acct
}

// forge signs claims with key, EdDSA, naming kid.
func forge(t *testing.T, key ed25519.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSecurity checks through the gateway: bad tokens are 401, roles are
// 403, and another customer's or another tenant's data does not exist.
func TestSecurity(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	ctx := context.Background()

	t.Run("tokens", func(t *testing.T) {
		key, err := auth.LoadOrCreateKey(w.dir)
		if err != nil {
			t.Fatal(err)
		}
		pub := key.Public().(ed25519.PublicKey)
		kid := auth.KeyID(pub)
		now := time.Now()
		valid := func() jwt.MapClaims {
			return jwt.MapClaims{"sub": "someone", "tenant": "demo", "roles": []string{"admin"}, "iss": auth.DefaultIssuer,
				"aud": auth.DefaultAudience, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		}
		with := func(k string, v any) jwt.MapClaims {
			c := valid()
			c[k] = v
			return c
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
		hs := jwt.NewWithClaims(jwt.SigningMethodHS256, valid())
		hs.Header["kid"] = kid
		confused, _ := hs.SignedString([]byte(pub))
		for _, tc := range []struct{ name, token string }{
			{"no token", ""},
			{"garbage", "not-a-jwt"},
			{"expired", forge(t, key, kid, with("exp", now.Add(-time.Minute).Unix()))},
			{"bad signature", forge(t, other, kid, valid())},
			{"alg none", none},
			{"HS256 keyed with the public key", confused},
			{"wrong issuer", forge(t, key, kid, with("iss", "someone-else"))},
			{"wrong audience", forge(t, key, kid, with("aud", "another-api"))},
		} {
			r := w.as(tc.token).do("GET", "/api/v1/accounts", nil)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") ||
				r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: %d %s %v", tc.name, r.status, r.raw, r.header)
			}
		}
		// The control: the same claims, properly signed, get in.
		if r := w.as(forge(t, key, kid, valid())).do("GET", "/api/v1/accounts", nil); r.status != http.StatusOK {
			t.Fatalf("a valid token: %d %s", r.status, r.raw)
		}
	})

	alice, aliceAcct := w.customer("demo", 10_000)
	bob, bobAcct := w.customer("demo", 10_000)
	p := w.product(700, 10)
	r := alice.do("POST", "/api/v1/orders", map[string]any{"payment_account_id": aliceAcct,
		"items": []any{map[string]any{"product_id": p, "quantity": 1}}, "shipping_address": address("62701")})
	if r.status != http.StatusAccepted {
		t.Fatalf("alice's order: %d %s", r.status, r.raw)
	}
	order := r.body["id"].(string)
	w.expect(order, "Confirmed", "")

	t.Run("another customer's data does not exist", func(t *testing.T) {
		if r := alice.do("GET", "/api/v1/orders/"+order, nil); r.status != http.StatusOK {
			t.Fatalf("alice reads her order: %d %s", r.status, r.raw)
		}
		if r := alice.do("GET", "/api/v1/shipments/"+order, nil); r.status != http.StatusOK {
			t.Fatalf("alice reads her shipment: %d %s", r.status, r.raw)
		}
		for _, tc := range []struct{ method, path string }{
			{"GET", "/api/v1/orders/" + order},
			{"GET", "/api/v1/shipments/" + order},
			{"GET", "/api/v1/accounts/" + aliceAcct},
			{"GET", "/api/v1/accounts/" + aliceAcct + "/events"},
			{"POST", "/api/v1/orders/" + order + "/cancel"},
		} {
			if r := bob.do(tc.method, tc.path, nil); r.status != http.StatusNotFound {
				t.Errorf("bob %s %s: %d %s", tc.method, tc.path, r.status, r.raw)
			}
		}
		if r := bob.do("POST", "/api/v1/accounts/"+aliceAcct+"/withdrawals", map[string]any{"amount": usd(1)}); r.status != http.StatusNotFound {
			t.Errorf("bob withdraws from alice: %d %s", r.status, r.raw)
		}
		if r := bob.do("POST", "/api/v1/transfers", map[string]any{"from_account_id": aliceAcct, "to_account_id": bobAcct, "amount": usd(100)}); r.status != http.StatusNotFound {
			t.Errorf("bob transfers alice's money: %d %s", r.status, r.raw)
		}
		r := bob.do("POST", "/api/v1/orders", map[string]any{"payment_account_id": aliceAcct,
			"items": []any{map[string]any{"product_id": p, "quantity": 1}}, "shipping_address": address("62701")})
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("bob pays with alice's account: %d %s", r.status, r.raw)
		}
		r = bob.do("POST", "/api/v1/orders", map[string]any{"customer_id": "someone-else", "payment_account_id": bobAcct,
			"items": []any{map[string]any{"product_id": p, "quantity": 1}}, "shipping_address": address("62701")})
		if r.status != http.StatusForbidden {
			t.Errorf("bob orders for someone else: %d %s", r.status, r.raw)
		}
		// Bob's list holds none of Alice's orders, whatever he asks for.
		r = bob.do("GET", "/api/v1/orders?customer_id="+alice.subject(t), nil)
		if r.status != http.StatusOK || len(r.body["items"].([]any)) != 0 {
			t.Errorf("bob lists alice's orders: %d %s", r.status, r.raw)
		}
	})

	t.Run("roles", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/api/v1/products", map[string]any{"sku": "X-1", "name": "X", "price": usd(100)}},
			{"POST", "/api/v1/inventory/" + p + "/restock", map[string]any{"quantity": 5}},
			{"POST", "/api/v1/accounts", map[string]any{"owner_id": "me", "currency": "USD"}},
			{"GET", "/api/v1/accounts", nil},
			{"GET", "/api/v1/sagas/checkout-" + order, nil},
			{"POST", "/api/v1/sagas/checkout-" + order + "/retry", nil},
		} {
			if r := alice.do(tc.method, tc.path, tc.body); r.status != http.StatusForbidden {
				t.Errorf("customer %s %s: %d %s", tc.method, tc.path, r.status, r.raw)
			}
		}
	})

	t.Run("another tenant's data does not exist", func(t *testing.T) {
		if err := w.srv.Service("identity").(*idapp.Service).CreateTenant(ctx, "acme", "Acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := w.srv.Service("identity").(*idapp.Service).CreateUser(ctx, "acme", "admin@acme.test", "password-123", "Acme admin", []identity.Role{identity.Admin}); err != nil {
			t.Fatal(err)
		}
		r := w.do("POST", "/api/v1/auth/token", map[string]any{"email": "admin@acme.test", "password": "password-123", "tenant": "acme"}, "Authorization", "")
		if r.status != http.StatusOK {
			t.Fatalf("acme admin login: %d %s", r.status, r.raw)
		}
		acme := w.as(r.body["access_token"].(string))
		for _, path := range []string{"/api/v1/orders/" + order, "/api/v1/accounts/" + aliceAcct, "/api/v1/accounts/" + aliceAcct + "/events",
			"/api/v1/shipments/" + order, "/api/v1/sagas/checkout-" + order} {
			if r := acme.do("GET", path, nil); r.status != http.StatusNotFound {
				t.Errorf("acme admin GET %s: %d %s", path, r.status, r.raw)
			}
		}
		for _, path := range []string{"/api/v1/accounts", "/api/v1/orders"} {
			r := acme.do("GET", path, nil)
			if r.status != http.StatusOK || len(r.body["items"].([]any)) != 0 {
				t.Errorf("acme admin lists %s: %d %s", path, r.status, r.raw)
			}
		}
		// The demo admin sees them all.
		if r := w.do("GET", "/api/v1/accounts/"+aliceAcct, nil); r.status != http.StatusOK {
			t.Errorf("demo admin reads alice's account: %d %s", r.status, r.raw)
		}
	})
	w.invariants()
}

// subject returns the user ID of c's token.
func (c *client) subject(t *testing.T) string {
	t.Helper()
	r := c.do("GET", "/api/v1/me", nil)
	if r.status != http.StatusOK {
		t.Fatalf("me: %d %s", r.status, r.raw)
	}
	return r.body["id"].(string)
}
