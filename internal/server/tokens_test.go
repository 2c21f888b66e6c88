package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/server"
)

// TestRefreshRotationAndLogout: a login gets a refresh token that works
// once, each exchange giving the next; a used refresh token presented
// again revokes its whole login; logout revokes the access token at the
// gateway and at every service called directly, and the login's refresh
// tokens; each step is in the audit log.
func TestRefreshRotationAndLogout(t *testing.T) {
	c, srv := bootEdge(t, func(*server.Config) {})
	anon := c.as("")
	login := func() response {
		t.Helper()
		r := anon.do("POST", "/api/v1/auth/token", map[string]any{"email": adminEmail, "password": adminPassword})
		if r.status != http.StatusOK || r.body["refresh_token"] == nil || r.body["refresh_expires_in"] == nil {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		return r
	}
	refresh := func(token string) response {
		t.Helper()
		return anon.do("POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": token})
	}
	first := login()
	r1 := first.body["refresh_token"].(string)
	if !strings.HasPrefix(r1, "agora_rt_") || strings.Contains(string(first.raw), `"refresh_expires_in":0`) {
		t.Fatalf("refresh token %q in %s", r1, first.raw)
	}
	second := refresh(r1)
	if second.status != http.StatusOK || second.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %v %s", second.status, second.header, second.raw)
	}
	r2 := second.body["refresh_token"].(string)
	if r2 == r1 || second.body["access_token"] == first.body["access_token"] {
		t.Fatal("a refresh returned the same tokens")
	}
	if me := c.as(second.body["access_token"].(string)).do("GET", "/api/v1/me", nil); me.status != http.StatusOK || me.body["email"] != adminEmail {
		t.Fatalf("the refreshed access token: %d %s", me.status, me.raw)
	}
	// r1 again: a reuse. It is refused, and so is r2, its successor.
	if again := refresh(r1); again.status != http.StatusUnauthorized || again.body["reason"] != "invalid_refresh_token" ||
		again.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("a used refresh token: %d %s", again.status, again.raw)
	}
	if stolen := refresh(r2); stolen.status != http.StatusUnauthorized {
		t.Fatalf("the successor of a reused refresh token: %d %s", stolen.status, stolen.raw)
	}
	for _, bad := range []any{"", "agora_rt_nope", strings.Repeat("x", 600), 42} {
		if r := refresh2(anon, bad); r.status < 400 || r.status >= 500 {
			t.Fatalf("refresh token %v: %d %s", bad, r.status, r.raw)
		}
	}

	// Logout: the token is refused everywhere from then on.
	third := login()
	access, r3 := third.body["access_token"].(string), third.body["refresh_token"].(string)
	user := c.as(access)
	out := user.do("POST", "/api/v1/auth/logout", nil)
	if out.status != http.StatusOK || out.body["logged_out"] != true || out.body["refresh_tokens_revoked"] != float64(1) {
		t.Fatalf("logout: %d %s", out.status, out.raw)
	}
	if me := user.do("GET", "/api/v1/me", nil); me.status != http.StatusUnauthorized || !strings.Contains(me.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("a logged-out token at the gateway: %d %v %s", me.status, me.header, me.raw)
	}
	for svc, path := range map[string]string{"identity": "/api/v1/me", "payments": "/api/v1/accounts", "ordering": "/api/v1/orders"} {
		direct := &client{t: t, base: "http://" + srv.ServiceAddr(svc), token: access}
		if r := direct.do("GET", path, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("a logged-out token at %s called directly: %d %s", svc, r.status, r.raw)
		}
	}
	if r := refresh(r3); r.status != http.StatusUnauthorized {
		t.Fatalf("the refresh token of a logged-out login: %d %s", r.status, r.raw)
	}
	if again := user.do("POST", "/api/v1/auth/logout", nil); again.status != http.StatusUnauthorized {
		t.Fatalf("a second logout: %d %s", again.status, again.raw)
	}
	// The first login's access token, never logged out, still works.
	if me := c.as(first.body["access_token"].(string)).do("GET", "/api/v1/me", nil); me.status != http.StatusOK {
		t.Fatalf("another login's token after a logout: %d %s", me.status, me.raw)
	}

	recs, err := srv.StoreOf("identity").ReadStream(context.Background(), audit.Stream("demo"), eventstore.StreamRead{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.Type]++
		for _, secret := range []string{r1, r2, r3, access} {
			if strings.Contains(string(r.Data), secret) {
				t.Fatalf("the audit log holds a token: %s", r.Data)
			}
		}
	}
	if seen[identity.AuditTokenRefreshed] != 1 || seen[identity.AuditRefreshReused] != 1 || seen[identity.AuditLoggedOut] != 1 || seen[identity.AuditRefreshRefused] < 2 {
		t.Fatalf("audit events %v", seen)
	}
}

func refresh2(c *client, token any) response {
	return c.do("POST", "/api/v1/auth/refresh", map[string]any{"refresh_token": token})
}
