package httpapi_test

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

type body struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, ct, body string
		code           errs.Code
		field          string
	}{
		{"ok", "application/json", `{"name":"a","count":2}`, "", ""},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, "", ""},
		{"ok problem-style +json", "application/merge-patch+json", `{"name":"a"}`, "", ""},
		{"empty", "application/json", ``, errs.Invalid, ""},
		{"malformed", "application/json", `{"name":`, errs.Invalid, ""},
		{"syntax", "application/json", `{"name" "a"}`, errs.Invalid, ""},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, errs.Invalid, "admin"},
		{"wrong type", "application/json", `{"count":"2"}`, errs.Invalid, "count"},
		{"not an object", "application/json", `[1,2]`, errs.Invalid, ""},
		{"two values", "application/json", `{"name":"a"}{"name":"b"}`, errs.Invalid, ""},
		{"trailing garbage", "application/json", `{"name":"a"} x`, errs.Invalid, ""},
		{"not json", "text/plain", `{"name":"a"}`, errs.Unsupported, ""},
		{"bad content type", "%%%", `{}`, errs.Unsupported, ""},
		{"too large", "application/json", `{"name":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`, errs.TooLarge, ""},
		{"too large after the value", "application/json", `{"name":"a"}` + strings.Repeat(" ", httpapi.MaxBodyBytes), errs.TooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(c.body))
			r.Header.Set("Content-Type", c.ct)
			var dst body
			err := httpapi.Decode(httptest.NewRecorder(), r, &dst)
			if c.code == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if dst.Name != "a" {
					t.Fatalf("decoded %+v", dst)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != c.code {
				t.Fatalf("err = %v, want code %s", err, c.code)
			}
			if c.field != "" && (len(e.Fields) != 1 || e.Fields[0].Field != c.field) {
				t.Fatalf("fields = %+v, want %s", e.Fields, c.field)
			}
		})
	}
}

func TestErrorWritesProblems(t *testing.T) {
	cases := []struct {
		err    error
		status int
		reason string
	}{
		{errs.Rule("insufficient_funds", "no"), 409, "insufficient_funds"},
		{fmt.Errorf("wrapped: %w", errs.E(errs.NotFound, "gone")), 404, ""},
		{errs.E(errs.Unprocessable, "bad"), 422, ""},
		{&errs.Error{Code: errs.Unauthenticated, Reason: "invalid_token", Message: "bad token"}, 401, "invalid_token"},
		{errs.E(errs.Forbidden, "not yours"), 403, ""},
		{&http.MaxBytesError{Limit: 10}, 413, ""},
		{fmt.Errorf("save: %w", eventstore.ErrConcurrency), 409, "concurrent_modification"},
		{context.DeadlineExceeded, 504, ""},
		{eventstore.ErrClosed, 503, ""},
		{errors.New("secret connection string postgres://u:p@h"), 500, ""},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		httpapi.Error(w, httptest.NewRequest(http.MethodGet, "/p", nil), c.err)
		if w.Code != c.status {
			t.Fatalf("%v: status %d, want %d", c.err, w.Code, c.status)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%v: Content-Type %q", c.err, ct)
		}
		var p httpapi.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.Status != c.status || p.Reason != c.reason || p.Instance != "/p" || p.Title == "" {
			t.Fatalf("%v: problem %+v", c.err, p)
		}
		if strings.Contains(w.Body.String(), "postgres://") {
			t.Fatalf("an internal error leaked its cause: %s", w.Body)
		}
	}
}

type waiter struct{ at uint64 }

func (w waiter) WaitFor(ctx context.Context, pos uint64) error {
	if pos <= w.at {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestConsistent(t *testing.T) {
	get := func(h string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if h != "" {
			r.Header.Set(httpapi.MinPositionHeader, h)
		}
		return r
	}
	if err := httpapi.Consistent(get(""), waiter{at: 0}); err != nil {
		t.Fatalf("no header: %v", err)
	}
	if err := httpapi.Consistent(get("7"), waiter{at: 7}); err != nil {
		t.Fatalf("reached: %v", err)
	}
	for _, bad := range []string{"x", "-1", "1.5", "99999999999999999999999"} {
		if errs.CodeOf(httpapi.Consistent(get(bad), waiter{})) != errs.Invalid {
			t.Fatalf("%q was accepted", bad)
		}
	}
	// A position never reached times out with 504 (the request's own
	// deadline stands in for MaxConsistencyWait here).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := httpapi.Consistent(get("8").WithContext(ctx), waiter{at: 7})
	if errs.CodeOf(httpapi.Classify(err)) != errs.Timeout {
		t.Fatalf("unreached position: %v", err)
	}
}

// TestConsistentOf: a write that waits on another context's log (ordering
// pricing as of a catalog write) waits for a token of that log only.
func TestConsistentOf(t *testing.T) {
	post := func(h string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if h != "" {
			r.Header.Set(httpapi.MinPositionHeader, h)
		}
		return r.WithContext(httpapi.WithLog(r.Context(), "ordering"))
	}
	never := waiter{at: 0}
	for _, h := range []string{"", "ordering.9", "9", "inventory.9"} {
		if err := httpapi.ConsistentOf(post(h), "catalog", never); err != nil {
			t.Fatalf("%q asked the catalog's model: %v", h, err)
		}
	}
	if err := httpapi.ConsistentOf(post("catalog.7"), "catalog", waiter{at: 7}); err != nil {
		t.Fatalf("reached: %v", err)
	}
	for _, bad := range []string{"x", "catalog.", "catalog.x", "Catalog.1"} {
		if errs.CodeOf(httpapi.ConsistentOf(post(bad), "catalog", never)) != errs.Invalid {
			t.Fatalf("%q was accepted", bad)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := httpapi.ConsistentOf(post("catalog.8").WithContext(ctx), "catalog", waiter{at: 7})
	if errs.CodeOf(httpapi.Classify(err)) != errs.Timeout {
		t.Fatalf("unreached position: %v", err)
	}
}

func TestMiddlewareRequestID(t *testing.T) {
	h := httpapi.Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpapi.Error(w, r, errs.E(errs.Invalid, "nope"))
	}))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set(httpapi.RequestIDHeader, "req-1")
	h.ServeHTTP(w, r)
	if w.Header().Get(httpapi.RequestIDHeader) != "req-1" {
		t.Fatalf("request id not echoed: %v", w.Header())
	}
	var p httpapi.Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	if p.RequestID != "req-1" {
		t.Fatalf("problem request_id = %q", p.RequestID)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Header().Get(httpapi.RequestIDHeader) == "" {
		t.Fatal("no request id generated")
	}
}

func TestMiddlewareRecoversPanics(t *testing.T) {
	h := httpapi.Middleware(slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("panic answered %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if strings.Contains(w.Body.String(), "boom") {
		t.Fatalf("the panic value leaked to the client: %s", w.Body)
	}
}

// TestUnreachableStoresAre503: a connection that failed — cut mid-answer,
// refused, or closed before the query was sent — is the store's absence,
// not the server's bug: 503 with Retry-After, never a 500.
func TestUnreachableStoresAre503(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("postgres: read: %w", io.ErrUnexpectedEOF),
		fmt.Errorf("append: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}),
		fmt.Errorf("append: %w", safeToRetry{}),
		fmt.Errorf("query: %w", driver.ErrBadConn),
	} {
		w := httptest.NewRecorder()
		httpapi.Error(w, httptest.NewRequest("GET", "/x", nil), err)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "dependency_unavailable") {
			t.Errorf("%v: %d %v %s", err, w.Code, w.Header(), w.Body)
		}
	}
	w := httptest.NewRecorder()
	httpapi.Error(w, httptest.NewRequest("GET", "/x", nil), errors.New("a bug"))
	if w.Code != http.StatusInternalServerError {
		t.Errorf("a plain error: %d", w.Code)
	}
}

type safeToRetry struct{}

func (safeToRetry) Error() string     { return "conn closed" }
func (safeToRetry) SafeToRetry() bool { return true }
