package ratelimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/ratelimit"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestMemoryGCRA(t *testing.T) {
	clk := testenv.NewClock()
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now})
	ctx := context.Background()
	limit := ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 3} // one token per 100ms
	for i, wantRemaining := range []int{2, 1, 0} {
		res, err := m.Allow(ctx, "k", limit)
		if err != nil || !res.Allowed || res.Remaining != wantRemaining || res.Limit != 3 || res.RetryAfter != 0 {
			t.Fatalf("request %d: %+v %v", i+1, res, err)
		}
		if want := time.Duration(i+1) * 100 * time.Millisecond; res.ResetAfter != want {
			t.Fatalf("request %d: ResetAfter %v, want %v", i+1, res.ResetAfter, want)
		}
	}
	res, _ := m.Allow(ctx, "k", limit)
	if res.Allowed || res.Remaining != 0 || res.RetryAfter != 100*time.Millisecond || res.ResetAfter != 300*time.Millisecond {
		t.Fatalf("over the burst: %+v", res)
	}
	// Another key has its own bucket.
	if res, _ := m.Allow(ctx, "other", limit); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("other key: %+v", res)
	}
	// One emission interval later exactly one more request fits.
	clk.Advance(100 * time.Millisecond)
	if res, _ := m.Allow(ctx, "k", limit); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("after 100ms: %+v", res)
	}
	if res, _ := m.Allow(ctx, "k", limit); res.Allowed {
		t.Fatalf("second after 100ms: %+v", res)
	}
	// A full refill restores the burst.
	clk.Advance(time.Second)
	if res, _ := m.Allow(ctx, "k", limit); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("after refill: %+v", res)
	}
}

func TestMemoryEvictsIdleKeys(t *testing.T) {
	clk := testenv.NewClock()
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now, SweepInterval: time.Minute})
	limit := ratelimit.Limit{Rate: 60, Period: time.Minute} // refills in at most a minute
	for i := range 100 {
		if _, err := m.Allow(context.Background(), fmt.Sprint("client-", i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 100 {
		t.Fatalf("Len = %d", m.Len())
	}
	clk.Advance(2 * time.Minute)
	if _, err := m.Allow(context.Background(), "fresh", limit); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 {
		t.Fatalf("idle keys kept: Len = %d", m.Len())
	}
}

func TestBadLimit(t *testing.T) {
	m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	for _, l := range []ratelimit.Limit{{Rate: -1, Period: time.Second}, {Rate: 1}, {Rate: 10, Period: 5}} {
		if _, err := m.Allow(context.Background(), "k", l); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}

// conformance runs checks every Limiter must pass. newLimiters returns n
// limiters sharing one state (n gateways); keys are unique per call.
func conformance(t *testing.T, newLimiters func(t *testing.T, n int) []ratelimit.Limiter) {
	ctx := context.Background()
	limit := ratelimit.Limit{Rate: 5, Period: time.Hour} // no refill during a test

	t.Run("burst then deny", func(t *testing.T) {
		l := newLimiters(t, 1)[0]
		for i := range 5 {
			res, err := l.Allow(ctx, "k", limit)
			if err != nil || !res.Allowed || res.Remaining != 4-i || res.Limit != 5 {
				t.Fatalf("request %d: %+v %v", i+1, res, err)
			}
		}
		res, err := l.Allow(ctx, "k", limit)
		if err != nil || res.Allowed || res.Remaining != 0 || res.RetryAfter <= 0 || res.ResetAfter <= 0 {
			t.Fatalf("over the limit: %+v %v", res, err)
		}
		if res, _ := l.Allow(ctx, "k2", limit); !res.Allowed {
			t.Fatal("keys share a bucket")
		}
		if res, err := l.Allow(ctx, "k", ratelimit.Limit{}); err != nil || !res.Allowed {
			t.Fatalf("zero limit: %+v %v", res, err)
		}
	})

	t.Run("gateways share one limit", func(t *testing.T) {
		ls := newLimiters(t, 2)
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := ls[i%2].Allow(ctx, "shared", limit)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Allowed {
					allowed.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := allowed.Load(); n != 5 {
			t.Fatalf("%d of 20 requests allowed across two gateways, want 5", n)
		}
	})
}

func TestMemoryConformance(t *testing.T) {
	conformance(t, func(t *testing.T, n int) []ratelimit.Limiter {
		m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
		ls := make([]ratelimit.Limiter, n)
		for i := range ls {
			ls[i] = m // one process: the same limiter
		}
		return ls
	})
}

func TestRedisConformance(t *testing.T) {
	testenv.RedisURL(t)
	conformance(t, func(t *testing.T, n int) []ratelimit.Limiter {
		ls := make([]ratelimit.Limiter, n)
		var prefix string
		for i := range ls {
			rdb := testenv.RedisClient(t) // a connection pool per gateway
			if i == 0 {
				prefix = testenv.RedisPrefix(t, rdb)
			}
			ls[i] = ratelimit.NewRedis(rdb, prefix)
		}
		return ls
	})
}

func TestRedisError(t *testing.T) {
	testenv.RedisURL(t)
	rdb := testenv.RedisClient(t)
	l := ratelimit.NewRedis(rdb, testenv.RedisPrefix(t, rdb))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Allow(ctx, "k", ratelimit.Limit{Rate: 1, Period: time.Second}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow on a canceled context = %v", err)
	}
}

// middleware builds a handler limited by policy, counting calls that get through.
func middleware(l ratelimit.Limiter, policy ratelimit.Policy, identify func(*http.Request) ratelimit.Identity, failClosed bool) (http.Handler, *atomic.Int64) {
	var calls atomic.Int64
	mw := ratelimit.Middleware(ratelimit.Options{
		Limiter: l,
		Policy: func(*http.Request) (ratelimit.Policy, bool) {
			return policy, !policy.Client.IsZero() || !policy.Tenant.IsZero()
		},
		Identify:   identify,
		FailClosed: failClosed,
		Logger:     slog.New(slog.DiscardHandler),
	})
	return mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })), &calls
}

func serve(h http.Handler, remote, user string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/api/v1/products", nil)
	r.RemoteAddr = remote + ":5555"
	if user != "" {
		r.Header.Set("X-Test-User", user)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func header(t *testing.T, w *httptest.ResponseRecorder, name string) int {
	t.Helper()
	v, err := strconv.Atoi(w.Header().Get(name))
	if err != nil {
		t.Fatalf("%s = %q", name, w.Header().Get(name))
	}
	return v
}

func TestMiddlewarePerClient(t *testing.T) {
	clk := testenv.NewClock()
	h, calls := middleware(ratelimit.NewMemory(ratelimit.MemoryOptions{Now: clk.Now}),
		ratelimit.Policy{Name: "public", Client: ratelimit.Limit{Rate: 2, Period: time.Minute}}, nil, false)
	for i := range 2 {
		w := serve(h, "10.0.0.1", "")
		if w.Code != 200 || header(t, w, "RateLimit-Limit") != 2 || header(t, w, "RateLimit-Remaining") != 1-i || header(t, w, "RateLimit-Reset") != 30*(i+1) {
			t.Fatalf("request %d: %d %v", i+1, w.Code, w.Header())
		}
	}
	w := serve(h, "10.0.0.1", "")
	if w.Code != http.StatusTooManyRequests || calls.Load() != 2 {
		t.Fatalf("third request: %d, %d calls", w.Code, calls.Load())
	}
	if header(t, w, "Retry-After") != 30 || header(t, w, "RateLimit-Remaining") != 0 || header(t, w, "RateLimit-Reset") != 60 {
		t.Fatalf("429 headers %v", w.Header())
	}
	var p httpapi.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("429 body %s (%v)", w.Body, err)
	}
	if p.Status != 429 || p.Reason != ratelimit.ReasonRateLimited || p.Title == "" || p.Detail == "" {
		t.Fatalf("problem %+v", p)
	}
	// Another client is not affected.
	if w := serve(h, "10.0.0.2", ""); w.Code != 200 {
		t.Fatalf("another client: %d", w.Code)
	}
	// Half a minute later one request fits again.
	clk.Advance(30 * time.Second)
	if w := serve(h, "10.0.0.1", ""); w.Code != 200 || header(t, w, "RateLimit-Remaining") != 0 {
		t.Fatalf("after the wait: %d %v", w.Code, w.Header())
	}
}

func TestMiddlewarePerTenant(t *testing.T) {
	identify := func(r *http.Request) ratelimit.Identity {
		return ratelimit.Identity{Client: "sub:" + r.Header.Get("X-Test-User"), Tenant: "demo"}
	}
	h, calls := middleware(ratelimit.NewMemory(ratelimit.MemoryOptions{}), ratelimit.Policy{
		Name:   "default",
		Client: ratelimit.Limit{Rate: 10, Period: time.Hour},
		Tenant: ratelimit.Limit{Rate: 3, Period: time.Hour},
	}, identify, false)
	for i, user := range []string{"alice", "bob", "alice"} {
		w := serve(h, "10.0.0.1", user)
		// The tenant's limit binds: its remaining count is reported.
		if w.Code != 200 || header(t, w, "RateLimit-Limit") != 3 || header(t, w, "RateLimit-Remaining") != 2-i {
			t.Fatalf("request %d by %s: %d %v", i+1, user, w.Code, w.Header())
		}
	}
	if w := serve(h, "10.0.0.9", "carol"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("fourth request of the tenant: %d %v", w.Code, w.Header())
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls got through", calls.Load())
	}
}

func TestMiddlewareNoLimit(t *testing.T) {
	h, calls := middleware(ratelimit.NewMemory(ratelimit.MemoryOptions{}), ratelimit.Policy{Name: "ops"}, nil, false)
	for range 100 {
		if w := serve(h, "10.0.0.1", ""); w.Code != 200 || w.Header().Get("RateLimit-Limit") != "" {
			t.Fatalf("unlimited route: %d %v", w.Code, w.Header())
		}
	}
	if calls.Load() != 100 {
		t.Fatalf("%d calls", calls.Load())
	}
}

type failing struct{}

func (failing) Allow(context.Context, string, ratelimit.Limit) (ratelimit.Result, error) {
	return ratelimit.Result{}, errors.New("redis: connection refused")
}

func TestMiddlewareLimiterFailure(t *testing.T) {
	policy := ratelimit.Policy{Name: "p", Client: ratelimit.Limit{Rate: 1, Period: time.Second}}
	open, calls := middleware(failing{}, policy, nil, false)
	if w := serve(open, "10.0.0.1", ""); w.Code != 200 || calls.Load() != 1 {
		t.Fatalf("fail open: %d", w.Code)
	}
	closed, calls := middleware(failing{}, policy, nil, true)
	if w := serve(closed, "10.0.0.1", ""); w.Code != http.StatusServiceUnavailable || calls.Load() != 0 {
		t.Fatalf("fail closed: %d", w.Code)
	}
}

// TestMiddlewareSharedByTwoGateways runs the middleware of two gateways
// on one Redis: together they allow the limit once, not twice.
func TestMiddlewareSharedByTwoGateways(t *testing.T) {
	testenv.RedisURL(t)
	a, b := testenv.RedisClient(t), testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t, a)
	policy := ratelimit.Policy{Name: "public", Client: ratelimit.Limit{Rate: 4, Period: time.Hour}}
	g1, calls1 := middleware(ratelimit.NewRedis(a, prefix), policy, nil, false)
	g2, calls2 := middleware(ratelimit.NewRedis(b, prefix), policy, nil, false)
	var codes []int
	for i := range 6 {
		g := g1
		if i%2 == 1 {
			g = g2
		}
		codes = append(codes, serve(g, "10.0.0.1", "").Code)
	}
	if fmt.Sprint(codes) != "[200 200 200 200 429 429]" || calls1.Load()+calls2.Load() != 4 {
		t.Fatalf("codes %v, calls %d+%d", codes, calls1.Load(), calls2.Load())
	}
}

func TestMiddlewareReportsRefusals(t *testing.T) {
	var refused []string
	mw := ratelimit.Middleware(ratelimit.Options{
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		Policy: func(*http.Request) (ratelimit.Policy, bool) {
			return ratelimit.Policy{Name: "write", Client: ratelimit.Limit{Rate: 1, Period: time.Hour},
				Tenant: ratelimit.Limit{Rate: 2, Period: time.Hour}}, true
		},
		Identify: func(r *http.Request) ratelimit.Identity {
			return ratelimit.Identity{Client: r.Header.Get("X-Test-User"), Tenant: "demo"}
		},
		Logger:    slog.New(slog.DiscardHandler),
		OnRefused: func(limit string) { refused = append(refused, limit) },
	})
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, user := range []string{"alice", "alice", "bob", "carol"} {
		serve(h, "10.0.0.1", user)
	}
	// alice's second: her own limit; bob's: fits; carol's: the tenant's.
	if want := []string{"client", "tenant"}; !slices.Equal(refused, want) {
		t.Fatalf("refusals %v, want %v", refused, want)
	}
}
