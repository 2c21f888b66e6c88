package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/edge"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestBodyLimit(t *testing.T) {
	var got []byte
	var calls int
	h := edge.BodyLimit(0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		got, _ = io.ReadAll(r.Body)
		if r.GetBody != nil {
			again, _ := r.GetBody()
			if b, _ := io.ReadAll(again); len(b) != len(got) {
				t.Error("GetBody differs from Body")
			}
		}
		if r.ContentLength != int64(len(got)) {
			t.Errorf("ContentLength %d for %d bytes", r.ContentLength, len(got))
		}
	}))
	send := func(body io.Reader, contentLength int64) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/api/v1/orders", body)
		r.ContentLength = contentLength
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	exact := strings.Repeat("x", edge.MaxBodyBytes)
	if w := send(strings.NewReader(exact), -1); w.Code != 200 || len(got) != edge.MaxBodyBytes {
		t.Fatalf("1 MiB exactly: %d, %d bytes", w.Code, len(got))
	}
	calls = 0
	over := exact + "x"
	for name, w := range map[string]*httptest.ResponseRecorder{
		"declared": send(strings.NewReader(over), int64(len(over))),
		"chunked":  send(strings.NewReader(over), -1),
	} {
		t.Run(name, func(t *testing.T) {
			testenv.Problem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusRequestEntityTooLarge)
		})
	}
	if calls != 0 {
		t.Fatalf("an oversized body reached the handler %d times", calls)
	}
	if w := send(nil, 0); w.Code != 200 {
		t.Fatalf("no body: %d", w.Code)
	}
}

func TestClientIP(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[2001:db8::1]:4312"
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	if ip := edge.ClientIP(r); ip != "2001:db8::1" {
		t.Fatalf("ClientIP = %q", ip)
	}
	r.RemoteAddr = "pipe"
	if ip := edge.ClientIP(r); ip != "pipe" {
		t.Fatalf("ClientIP = %q", ip)
	}
}
