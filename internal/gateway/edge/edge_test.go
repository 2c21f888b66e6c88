package edge_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/gateway/edge"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

func TestRequestID(t *testing.T) {
	var seenHeader string
	h := edge.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenHeader = r.Header.Get(edge.RequestIDHeader)
	}))
	for _, c := range []struct {
		sent string
		echo bool
	}{
		{"req-1", true},
		{"0190a5c3-7b1e-7c2a-9f00-1234567890ab", true},
		{"trace:abc/def=", true},
		{"", false},
		{"has space", false},
		{"evil\r\nSet-Cookie: x", false},
		{"<script>", false},
		{strings.Repeat("a", 129), false},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		if c.sent != "" {
			r.Header[edge.RequestIDHeader] = []string{c.sent}
		}
		h.ServeHTTP(w, r)
		got := w.Header().Get(edge.RequestIDHeader)
		if c.echo && got != c.sent {
			t.Errorf("%q: answered %q", c.sent, got)
		}
		if !c.echo {
			if _, err := uuid.Parse(got); err != nil {
				t.Errorf("%q: answered %q, not a fresh UUID", c.sent, got)
			}
		}
		if seenHeader != got {
			t.Errorf("%q: forwarded %q, answered %q", c.sent, seenHeader, got)
		}
	}
}

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
		assertProblem(t, w, http.StatusRequestEntityTooLarge, name)
	}
	if calls != 0 {
		t.Fatalf("an oversized body reached the handler %d times", calls)
	}
	if w := send(nil, 0); w.Code != 200 {
		t.Fatalf("no body: %d", w.Code)
	}
}

func TestRecoverer(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := edge.RequestID(edge.Recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom: secret detail")
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	p := assertProblem(t, w, http.StatusInternalServerError, "panic")
	if strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("the panic leaked: %s", w.Body)
	}
	if p.RequestID == "" || p.RequestID != w.Header().Get(edge.RequestIDHeader) {
		t.Fatalf("problem request_id %q", p.RequestID)
	}

	// A panic after the answer began cannot be answered: the connection
	// is cut instead.
	h = edge.Recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic("late")
	}))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want ErrAbortHandler", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	}()

	// http.ErrAbortHandler passes through.
	h = edge.Recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	}()
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

func assertProblem(t *testing.T, w *httptest.ResponseRecorder, status int, what string) httpapi.Problem {
	t.Helper()
	if w.Code != status || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s: %d %s %s", what, w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if p.Status != status || p.Title == "" || p.Type == "" || p.Detail == "" {
		t.Fatalf("%s: problem %+v", what, p)
	}
	return p
}
