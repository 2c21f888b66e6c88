package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionRenewsTokens: a client logs in again once its token is half
// way to expiry, so that a run longer than a token's life (a soak) goes on
// with valid tokens.
func TestSessionRenewsTokens(t *testing.T) {
	var logins atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/auth/token" {
			n := logins.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprint("t", n), "expires_in": 1})
			return
		}
		if r.Header.Get("Authorization") != fmt.Sprint("Bearer t", logins.Load()) {
			http.Error(w, "stale token", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := login(context.Background(), srv.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if err := c.post(context.Background(), "/x", nil, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := logins.Load(); n < 3 {
		t.Errorf("%d logins in 1.5 s of a token that expires in 1 s, renewed half way: want at least 3", n)
	}
}
