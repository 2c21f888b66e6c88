package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestRequestID(t *testing.T) {
	var seenHeader string
	h := httpapi.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenHeader = r.Header.Get(httpapi.RequestIDHeader)
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
			r.Header[httpapi.RequestIDHeader] = []string{c.sent}
		}
		h.ServeHTTP(w, r)
		got := w.Header().Get(httpapi.RequestIDHeader)
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

func TestRecoverer(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h := httpapi.RequestID(httpapi.Recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom: secret detail")
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	p := testenv.Problem(t, w.Code, w.Header(), w.Body.Bytes(), http.StatusInternalServerError)
	if strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("the panic leaked: %s", w.Body)
	}
	if p.RequestID == "" || p.RequestID != w.Header().Get(httpapi.RequestIDHeader) {
		t.Fatalf("problem request_id %q", p.RequestID)
	}

	// A panic after the answer began cannot be answered: the connection
	// is cut instead.
	h = httpapi.Recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	h = httpapi.Recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	}()
}
