package resilience_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/resilience"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
)

// upstream is an httptest server whose answer the test sets, counting hits.
type upstream struct {
	*httptest.Server
	hits   atomic.Int64
	status atomic.Int64
	bodies chan string
}

func newUpstream(t *testing.T, status int) *upstream {
	u := &upstream{bodies: make(chan string, 100)}
	u.status.Store(int64(status))
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		select {
		case u.bodies <- string(b):
		default:
		}
		w.WriteHeader(int(u.status.Load()))
		io.WriteString(w, "upstream says hi")
	}))
	t.Cleanup(u.Close)
	return u
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func do(t *testing.T, c *resilience.Cluster, method, url, key, body string) (*http.Response, string, error) {
	t.Helper()
	return doCtx(t, context.Background(), c, method, url, key, body)
}

func doCtx(t *testing.T, ctx context.Context, c http.RoundTripper, method, url, key, body string) (*http.Response, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b), nil
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	up := newUpstream(t, http.StatusInternalServerError)
	var mu sync.Mutex
	var transitions []string
	c := resilience.New("catalog", nil, resilience.Config{
		FailureThreshold: 3, Delay: 100 * time.Millisecond, MaxRetries: -1, Logger: quiet(),
		OnStateChange: func(cluster string, from, to resilience.State) {
			mu.Lock()
			defer mu.Unlock()
			transitions = append(transitions, cluster+":"+from.String()+">"+to.String())
		},
	})
	for range 3 {
		resp, body, err := do(t, c, "GET", up.URL, "", "")
		if err != nil || resp.StatusCode != 500 || body != "upstream says hi" {
			t.Fatalf("closed breaker: %v %v %q", resp, err, body)
		}
	}
	if c.State() != resilience.Open {
		t.Fatalf("state %v after 3 failures", c.State())
	}
	for range 10 {
		resp, body, err := do(t, c, "GET", up.URL, "", "")
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("open breaker: %v %v", resp, err)
		}
		assertProblem(t, resp, body, 503, resilience.ReasonCircuitOpen)
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After %q", ra)
		}
	}
	if n := up.hits.Load(); n != 3 {
		t.Fatalf("the open breaker let %d calls reach the upstream", n-3)
	}

	// After the delay a trial goes through; still failing, it re-opens.
	waitFor(t, func() bool {
		do(t, c, "GET", up.URL, "", "")
		return up.hits.Load() > 3
	})
	if up.hits.Load() != 4 || c.State() != resilience.Open {
		t.Fatalf("failed trial: hits %d, state %v", up.hits.Load(), c.State())
	}

	// Healthy again: the breaker closes on its own after a trial.
	up.status.Store(200)
	waitFor(t, func() bool {
		resp, _, err := do(t, c, "GET", up.URL, "", "")
		return err == nil && resp.StatusCode == 200
	})
	if c.State() != resilience.Closed {
		t.Fatalf("state %v after a successful trial", c.State())
	}
	mu.Lock()
	defer mu.Unlock()
	want := "catalog:closed>open catalog:open>half-open catalog:half-open>open catalog:open>half-open catalog:half-open>closed"
	if got := strings.Join(transitions, " "); got != want {
		t.Fatalf("transitions\n got %s\nwant %s", got, want)
	}
}

func TestFailureRatio(t *testing.T) {
	up := newUpstream(t, 200)
	c := resilience.New("c", nil, resilience.Config{FailureThreshold: 3, FailureWindow: 6, MaxRetries: -1, Logger: quiet()})
	// Alternating failures never make 3 in a row, but 3 of the last 6.
	for i := range 6 {
		up.status.Store(int64([]int{500, 200}[i%2]))
		do(t, c, "GET", up.URL, "", "")
		if i < 4 && c.State() != resilience.Closed {
			t.Fatalf("opened after %d calls", i+1)
		}
	}
	if c.State() != resilience.Open {
		t.Fatalf("state %v after 3 failures in 6", c.State())
	}
}

func TestRetriesOnlyIdempotentRequests(t *testing.T) {
	up := newUpstream(t, http.StatusServiceUnavailable)
	c := resilience.New("ordering", nil, resilience.Config{FailureThreshold: 1000, MaxRetries: 2, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond, Logger: quiet()})
	no, yes := false, true
	cases := []struct {
		name, method, key string
		rt                http.RoundTripper
		hits              int64
	}{
		{"GET is retried", "GET", "", c, 3},
		{"HEAD is retried", "HEAD", "", c, 3},
		{"POST is never retried", "POST", "", c, 1},
		{"PUT is not retried by default", "PUT", "", c, 1},
		{"POST with Idempotency-Key is retried", "POST", "k-1", c, 3},
		{"a route can forbid retries", "GET", "", c.Route(resilience.RouteOptions{Idempotent: &no}), 1},
		{"a route can allow retries", "PUT", "", c.Route(resilience.RouteOptions{Idempotent: &yes}), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			for len(up.bodies) > 0 {
				<-up.bodies
			}
			body := ""
			if tc.method == "POST" || tc.method == "PUT" {
				body = `{"amount":1}`
			}
			resp, got, err := doCtx(t, context.Background(), tc.rt, tc.method, up.URL, tc.key, body)
			if err != nil {
				t.Fatal(err)
			}
			if n := up.hits.Load() - before; n != tc.hits {
				t.Fatalf("upstream hit %d times, want %d", n, tc.hits)
			}
			// The client gets the upstream's own last answer.
			if resp.StatusCode != 503 || (tc.method != "HEAD" && got != "upstream says hi") {
				t.Fatalf("answer %d %q", resp.StatusCode, got)
			}
			for range tc.hits {
				if b := <-up.bodies; b != body {
					t.Fatalf("attempt sent body %q, want %q", b, body)
				}
			}
		})
	}
}

func TestRetrySucceeds(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := resilience.New("c", nil, resilience.Config{MaxRetries: 3, BackoffBase: time.Millisecond, Logger: quiet()})
	resp, body, err := do(t, c, "GET", srv.URL, "", "")
	if err != nil || resp.StatusCode != 200 || body != "ok" || hits.Load() != 3 {
		t.Fatalf("%v %v %q after %d hits", resp, err, body, hits.Load())
	}
	if c.State() != resilience.Closed {
		t.Fatalf("state %v", c.State())
	}
}

// roundTripFunc is a fake transport.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportErrors(t *testing.T) {
	var calls atomic.Int64
	refused := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return nil, errors.New("dial tcp 10.0.0.1:80: connect: connection refused")
	})
	c := resilience.New("payments", refused, resilience.Config{FailureThreshold: 100, BackoffBase: time.Millisecond, Logger: quiet()})
	_, _, err := do(t, c, "GET", "http://payments/x", "", "")
	if errs.CodeOf(err) != errs.Unavailable || calls.Load() != 3 {
		t.Fatalf("GET: %v after %d calls", err, calls.Load())
	}
	w := httptest.NewRecorder()
	httpapi.Error(w, httptest.NewRequest("GET", "/x", nil), err)
	if w.Code != 503 || strings.Contains(w.Body.String(), "10.0.0.1") {
		t.Fatalf("the error writes as %d %s", w.Code, w.Body)
	}
	calls.Store(0)
	if _, _, err := do(t, c, "POST", "http://payments/x", "", "{}"); errs.CodeOf(err) != errs.Unavailable || calls.Load() != 1 {
		t.Fatalf("POST: %v after %d calls", err, calls.Load())
	}
}

func TestAttemptTimeout(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select { // hang until the gateway gives up
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	defer srv.Close()
	c := resilience.New("shipping", nil, resilience.Config{AttemptTimeout: 20 * time.Millisecond, MaxRetries: 1, BackoffBase: time.Millisecond, FailureThreshold: 2, Logger: quiet()})
	_, _, err := do(t, c, "GET", srv.URL, "", "")
	if errs.CodeOf(err) != errs.Unavailable || errs.ReasonOf(err) != "upstream_timeout" {
		t.Fatalf("err = %v, want a Timeout", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d attempts, want 2", hits.Load())
	}
	// Timeouts count against the breaker.
	if c.State() != resilience.Open {
		t.Fatalf("state %v after 2 timeouts", c.State())
	}
}

// hanging is an upstream that answers nothing (or, with headersFirst,
// headers and then nothing) until the test ends or the request goes.
func hanging(t *testing.T, headersFirst bool) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if headersFirst {
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv, &hits
}

func TestRouteTimeoutBoundsRetries(t *testing.T) {
	srv, hits := hanging(t, false)
	// Each attempt may take 10s, but the route gives the whole request
	// 50ms: the first attempt is cut short and no retry follows.
	c := resilience.New("catalog", nil, resilience.Config{AttemptTimeout: 10 * time.Second, MaxRetries: 3, BackoffBase: time.Millisecond, Logger: quiet()})
	_, _, err := doCtx(t, context.Background(), c.Route(resilience.RouteOptions{Timeout: 50 * time.Millisecond}), "GET", srv.URL, "", "")
	var e *errs.Error
	if !errors.As(err, &e) || e.Code != errs.Unavailable || e.Reason != "upstream_timeout" || e.RetryAfter != time.Second {
		t.Fatalf("err = %v, want an upstream_timeout", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d attempts after the route's time ran out, want 1", hits.Load())
	}
}

func TestRouteTimeoutBoundsBody(t *testing.T) {
	srv, _ := hanging(t, true)
	c := resilience.New("catalog", nil, resilience.Config{Logger: quiet()})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := c.Route(resilience.RouteOptions{Timeout: 50 * time.Millisecond}).RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); ended <- err }()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the body ended cleanly, but the upstream never finished it")
		}
	case <-time.After(10 * time.Second): // a guard against hangs
		t.Fatal("the body was still being read long after the route's timeout")
	}
	// Without a route timeout the body may take longer than an attempt's
	// deadline (which bounds the time to headers only).
	c = resilience.New("catalog", nil, resilience.Config{AttemptTimeout: 50 * time.Millisecond, Logger: quiet()})
	req, _ = http.NewRequest("GET", srv.URL, nil)
	resp, err = c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the attempt's deadline
	read := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); read <- err }()
	select {
	case err := <-read:
		t.Fatalf("the body ended (%v) at the attempt's deadline", err)
	case <-time.After(100 * time.Millisecond): // still streaming
	}
	resp.Body.Close()
	<-read
}

func TestClientCancelDoesNotCount(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	var entered = make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-block:
		}
	}))
	defer srv.Close()
	c := resilience.New("c", nil, resilience.Config{FailureThreshold: 1, Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-entered; cancel() }()
	_, _, err := doCtx(t, ctx, c, "GET", srv.URL, "", "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if c.State() != resilience.Closed {
		t.Fatalf("a client's cancel opened the breaker")
	}
}

func TestEndedRequestIsNotSent(t *testing.T) {
	up := newUpstream(t, 200)
	c := resilience.New("c", nil, resilience.Config{MaxRetries: 2, BackoffBase: time.Millisecond, Logger: quiet()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, _, err := doCtx(t, ctx, c, "GET", up.URL, "", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if n := up.hits.Load(); n != 0 {
		t.Fatalf("an ended request reached the upstream %d times", n)
	}
}

func TestBulkheadFull(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		entered <- struct{}{}
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		io.WriteString(w, "done")
	}))
	defer srv.Close()
	c := resilience.New("inventory", nil, resilience.Config{MaxConcurrent: 1, Logger: quiet()})
	first := make(chan string, 1)
	go func() {
		resp, body, err := do(t, c, "GET", srv.URL, "", "")
		if err != nil {
			first <- err.Error()
			return
		}
		first <- resp.Status + " " + body
	}()
	<-entered
	resp, body, err := do(t, c, "GET", srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	assertProblem(t, resp, body, 503, resilience.ReasonBulkheadFull)
	if hits.Load() != 1 {
		t.Fatalf("a rejected call reached the upstream")
	}
	close(release)
	if got := <-first; got != "200 OK done" {
		t.Fatalf("first call: %s", got)
	}
	// The permit is back.
	if resp, _, err := do(t, c, "GET", srv.URL, "", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after release: %v %v", resp, err)
	}
	if c.State() != resilience.Closed {
		t.Fatalf("a full bulkhead moved the breaker to %v", c.State())
	}
}

func TestIsIdempotent(t *testing.T) {
	r := httptest.NewRequest("POST", "/", nil)
	if resilience.IsIdempotent(r) {
		t.Fatal("plain POST")
	}
	r.Header.Set("Idempotency-Key", "x")
	if !resilience.IsIdempotent(r) {
		t.Fatal("POST with a key")
	}
}

func assertProblem(t *testing.T, resp *http.Response, body string, status int, reason string) {
	t.Helper()
	if p := testenv.Problem(t, resp.StatusCode, resp.Header, []byte(body), status); p.Reason != reason {
		t.Fatalf("reason %q, want %q", p.Reason, reason)
	}
}

// waitFor polls cond, failing the test only if it never holds (a guard
// against hangs, not a timing assertion).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
