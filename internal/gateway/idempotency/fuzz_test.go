package idempotency_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/idempotency"
)

// FuzzIdempotencyKey sends POSTs with arbitrary Idempotency-Key values and
// bodies: a key that is not 1 to 255 printable ASCII characters is a 400
// problem and never reaches the upstream; a good one runs the request
// once, replays its answer to the same request and refuses (422) another
// body under it; nothing panics or answers 5xx.
func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []struct{ key, body string }{
		{"order-2024-0001", `{"items":[{"product_id":"p1","quantity":1}]}`},
		{"f47ac10b-58cc-4372-a567-0e02b2c3d479", `{}`},
		{"", `{"a":1}`}, {" ", ""}, {"~", "x"}, {"key\x7f", "x"}, {"key\x00", "x"}, {"clé", "x"},
		{"key\r\nX-Injected: 1", "x"}, {strings.Repeat("k", 255), "x"}, {strings.Repeat("k", 256), "x"},
		{"\xff\xfe", ""}, {"a\tb", "x"},
	} {
		f.Add(s.key, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, key string, body []byte) {
		calls := 0
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls++
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Location", "/api/v1/orders/o-1")
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"call": calls, "length": r.ContentLength})
		})
		h := idempotency.Middleware(idempotency.Options{Store: idempotency.NewMemoryStore(nil)})(next)
		send := func(body []byte) *httptest.ResponseRecorder {
			r := httptest.NewRequest("POST", "/api/v1/orders", bytes.NewReader(body))
			r.Header["Idempotency-Key"] = []string{key}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code >= 500 {
				t.Fatalf("key %q: %d %s", key, w.Code, w.Body)
			}
			return w
		}
		first, again := send(body), send(body)
		valid := len(key) >= 1 && len(key) <= idempotency.MaxKeyLength
		for i := 0; i < len(key); i++ {
			valid = valid && key[i] >= 0x20 && key[i] <= 0x7e
		}
		switch {
		case key == "":
			if first.Code != http.StatusCreated || again.Code != http.StatusCreated || calls != 2 {
				t.Fatalf("no key: %d, %d, %d calls; want two 201s", first.Code, again.Code, calls)
			}
		case !valid:
			for _, w := range []*httptest.ResponseRecorder{first, again} {
				var p struct{ Status int }
				if w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != "application/problem+json" ||
					json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Status != http.StatusBadRequest {
					t.Fatalf("key %q: %d %q %s; want a 400 problem", key, w.Code, w.Header().Get("Content-Type"), w.Body)
				}
			}
			if calls != 0 {
				t.Fatalf("key %q: refused but the upstream was called %d times", key, calls)
			}
		default:
			if first.Code != http.StatusCreated || again.Code != http.StatusCreated || calls != 1 ||
				again.Header().Get(idempotency.ReplayedHeader) != "true" || again.Body.String() != first.Body.String() ||
				again.Header().Get("Location") != first.Header().Get("Location") {
				t.Fatalf("key %q: %d %s then %d %s (replayed %q), %d calls; want one call replayed",
					key, first.Code, first.Body, again.Code, again.Body, again.Header().Get(idempotency.ReplayedHeader), calls)
			}
			if other := send(append(bytes.Clone(body), '!')); other.Code != http.StatusUnprocessableEntity || calls != 1 {
				t.Fatalf("key %q reused for another body: %d %s, %d calls; want 422", key, other.Code, other.Body, calls)
			}
		}
	})
}
