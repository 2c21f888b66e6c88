// Package resilience guards the gateway's calls to one upstream cluster
// with failsafe-go policies, composed (outermost first) as
//
//		Fallback(Bulkhead(Retry(CircuitBreaker(round trip with a deadline))))
//
//	  - a deadline bounds each attempt (time to response headers). It is
//	    set on the attempt's context rather than by failsafe-go's timeout
//	    policy: with that policy, failsafehttp merges the request's and the
//	    execution's contexts with a goroutine per attempt, which cost the
//	    gateway about a tenth of its throughput (BenchmarkOverhead). An
//	    expired attempt fails with timeout.ErrExceeded, as the policy's did;
//	  - the circuit breaker opens after FailureThreshold failures among the
//	    last FailureWindow attempts (consecutive failures when the window is
//	    the threshold), lets a trial through after Delay (half-open) and
//	    closes after SuccessThreshold trial successes. Failures are 5xx
//	    answers, transport errors and attempt timeouts;
//	  - retries, with exponential backoff and jitter, only for idempotent
//	    requests (see IsIdempotent): a failed POST may already have taken
//	    effect, so it is never repeated unless it carries an Idempotency-Key;
//	  - the bulkhead bounds in-flight requests to the cluster;
//	  - the fallback answers at once with 503 problem+json (and
//	    Retry-After) when the breaker is open or the bulkhead full, without
//	    touching the upstream.
//
// A Cluster is an http.RoundTripper: put it under an
// httputil.ReverseProxy, with a balance.Balancer's Transport under it so
// that each attempt goes to an instance of its own. The request's context
// bounds the whole call, retries included (the route's timeout).
package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/fallback"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/agora-commerce/agora/internal/gateway/problem"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

// State is a circuit breaker's state.
type State = circuitbreaker.State

// The breaker states.
const (
	// Closed: calls flow.
	Closed = circuitbreaker.ClosedState
	// Open: calls are refused with 503 until the delay has passed.
	Open = circuitbreaker.OpenState
	// HalfOpen: trial calls decide between Closed and Open.
	HalfOpen = circuitbreaker.HalfOpenState
)

// Problem reasons of the fallback's 503 answers.
const (
	// ReasonCircuitOpen: the cluster's breaker is open.
	ReasonCircuitOpen = "circuit_open"
	// ReasonBulkheadFull: the cluster has too many requests in flight.
	ReasonBulkheadFull = "bulkhead_full"
)

// Config tunes a Cluster. Zero fields take the defaults shown.
type Config struct {
	// FailureThreshold opens the breaker (default 5).
	FailureThreshold uint
	// FailureWindow is the number of recent attempts FailureThreshold is
	// counted in (default FailureThreshold: consecutive failures).
	FailureWindow uint
	// Delay is how long the breaker stays open before a trial (default 10s).
	Delay time.Duration
	// SuccessThreshold is the number of trial successes that close the
	// breaker (default 1).
	SuccessThreshold uint
	// MaxRetries bounds the retries of an idempotent request (default 2;
	// negative: none).
	MaxRetries int
	// BackoffBase is the first retry's delay, doubled per retry (default
	// 50ms) up to BackoffMax (default 1s), jittered by ±50%.
	BackoffBase, BackoffMax time.Duration
	// AttemptTimeout bounds one attempt (default 10s).
	AttemptTimeout time.Duration
	// MaxConcurrent bounds in-flight requests (default 64).
	MaxConcurrent uint
	// MaxWait is how long a request may queue for the bulkhead (default 0:
	// a full bulkhead answers 503 at once).
	MaxWait time.Duration
	// OnStateChange, if set, is called on every breaker transition (for
	// metrics); it must not block.
	OnStateChange func(cluster string, from, to State)
	// Logger receives breaker transitions (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 5
	}
	if c.FailureWindow < c.FailureThreshold {
		c.FailureWindow = c.FailureThreshold
	}
	if c.Delay <= 0 {
		c.Delay = 10 * time.Second
	}
	if c.SuccessThreshold == 0 {
		c.SuccessThreshold = 1
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = 2
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 50 * time.Millisecond
	}
	if c.BackoffMax < c.BackoffBase {
		c.BackoffMax = max(time.Second, c.BackoffBase)
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Cluster is the resilience executor of one upstream cluster. It is safe
// for concurrent use.
type Cluster struct {
	name    string
	cfg     Config
	breaker circuitbreaker.CircuitBreaker[*http.Response]
	once    http.RoundTripper // no retries
	retried http.RoundTripper
}

// New returns the executor for cluster name, sending attempts through
// next (nil: http.DefaultTransport).
func New(name string, next http.RoundTripper, cfg Config) *Cluster {
	cfg.defaults()
	if next == nil {
		next = http.DefaultTransport
	}
	c := &Cluster{name: name, cfg: cfg}

	c.breaker = circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(isFailure).
		WithFailureThresholdRatio(cfg.FailureThreshold, cfg.FailureWindow).
		WithSuccessThreshold(cfg.SuccessThreshold).
		WithDelay(cfg.Delay).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			cfg.Logger.Warn("gateway: circuit breaker "+e.NewState.String(), "cluster", name, "from", e.OldState.String())
			if cfg.OnStateChange != nil {
				cfg.OnStateChange(name, e.OldState, e.NewState)
			}
		}).
		Build()
	bh := bulkhead.NewBuilder[*http.Response](cfg.MaxConcurrent).WithMaxWaitTime(cfg.MaxWait).Build()
	fb := fallback.NewBuilderWithFunc(c.reject).
		HandleErrors(circuitbreaker.ErrOpen, bulkhead.ErrFull).
		Build()
	retry := retrypolicy.NewBuilder[*http.Response]().
		HandleIf(isRetryable).
		AbortOnErrors(context.Canceled, circuitbreaker.ErrOpen).
		WithMaxRetries(cfg.MaxRetries).
		WithBackoff(cfg.BackoffBase, cfg.BackoffMax).
		WithJitterFactor(0.5).
		ReturnLastFailure().
		OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[*http.Response]) {
			discard(e.LastResult()) // the failed attempt's answer is dropped
		}).
		Build()

	next = attemptDeadline{next: next, d: cfg.AttemptTimeout}
	c.once = failsafehttp.NewRoundTripper(next, fb, bh, c.breaker)
	c.retried = failsafehttp.NewRoundTripper(next, fb, bh, retry, c.breaker)
	return c
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// State returns the breaker's state. An open breaker reports Open until
// the first request after its delay moves it to HalfOpen.
func (c *Cluster) State() State { return c.breaker.State() }

// RoundTrip sends req through the policies. Retries happen only when
// IsIdempotent(req). The response is the upstream's (a failed attempt's
// last answer once retries are exhausted) or the fallback's 503. Errors
// are *errs.Error values httpapi.Error maps to statuses: Timeout (504)
// when attempts time out, Unavailable (503) when the upstream cannot be
// reached; a canceled or expired request context is returned as is.
func (c *Cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := c.once
	if IsIdempotent(req) {
		rt = c.retried
	}
	resp, err := rt.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	var rj *rejection
	if errors.As(err, &rj) {
		return problem.Response(req, http.StatusServiceUnavailable, rj.reason, rj.detail, rj.retryAfter), nil
	}
	if ctxErr := req.Context().Err(); ctxErr != nil && !errors.Is(err, timeout.ErrExceeded) {
		return nil, fmt.Errorf("upstream %s: %w", c.name, ctxErr)
	}
	if errors.Is(err, timeout.ErrExceeded) {
		return nil, &errs.Error{Code: errs.Timeout, Reason: "upstream_timeout",
			Message: fmt.Sprintf("upstream %s did not answer within %v", c.name, c.cfg.AttemptTimeout), Err: err}
	}
	return nil, &errs.Error{Code: errs.Unavailable, Reason: "upstream_unavailable",
		Message: fmt.Sprintf("upstream %s is unavailable", c.name), Err: err}
}

// rejection is the fallback's answer to an open breaker or a full
// bulkhead; RoundTrip turns it into a 503 problem for its request.
type rejection struct {
	reason, detail string
	retryAfter     int // seconds
}

func (r *rejection) Error() string { return r.detail }

// attemptDeadline gives each attempt d to answer with its headers; the
// body may take longer. An attempt past it fails with
// timeout.ErrExceeded.
type attemptDeadline struct {
	next http.RoundTripper
	d    time.Duration
}

func (a attemptDeadline) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(a.d, func() { cancel(timeout.ErrExceeded) })
	resp, err := a.next.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() && context.Cause(ctx) == timeout.ErrExceeded {
		cancel(nil)
		if resp != nil {
			resp.Body.Close()
		}
		return nil, fmt.Errorf("attempt of %v: %w", a.d, timeout.ErrExceeded)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}

// cancelOnClose ends an attempt's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// reject is the fallback: a 503 problem for an open breaker or a full
// bulkhead.
func (c *Cluster) reject(exec failsafe.Execution[*http.Response]) (*http.Response, error) {
	if errors.Is(exec.LastError(), circuitbreaker.ErrOpen) {
		wait := int((c.breaker.RemainingDelay() + time.Second - 1) / time.Second)
		return nil, &rejection{reason: ReasonCircuitOpen,
			detail: fmt.Sprintf("upstream %s is failing; its circuit breaker is open", c.name), retryAfter: max(wait, 1)}
	}
	return nil, &rejection{reason: ReasonBulkheadFull,
		detail: fmt.Sprintf("upstream %s has too many requests in flight", c.name), retryAfter: 1}
}

type idempotentKey struct{}

// WithIdempotent returns ctx carrying an explicit answer for IsIdempotent,
// e.g. a route's override.
func WithIdempotent(ctx context.Context, idempotent bool) context.Context {
	return context.WithValue(ctx, idempotentKey{}, idempotent)
}

// IsIdempotent reports whether req may be sent more than once: the
// answer given by WithIdempotent if any, else true for GET, HEAD and
// OPTIONS and for a POST with an Idempotency-Key.
func IsIdempotent(req *http.Request) bool {
	if v, ok := req.Context().Value(idempotentKey{}).(bool); ok {
		return v
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		return req.Header.Get("Idempotency-Key") != ""
	}
	return false
}

// isFailure tells the breaker what counts against the upstream: 5xx
// answers, transport errors and attempt timeouts, but not a request the
// client abandoned.
func isFailure(resp *http.Response, err error) bool {
	if err != nil {
		return errors.Is(err, timeout.ErrExceeded) || !errors.Is(err, context.Canceled)
	}
	return resp != nil && resp.StatusCode >= 500
}

// isRetryable is isFailure minus the answers a retry cannot change: a
// 501 or 505, and a 504 the upstream gave itself (it already waited as
// long as it would — a read that asked for a position its read model did
// not reach in time — so asking again only doubles the wait).
func isRetryable(resp *http.Response, err error) bool {
	if err == nil && resp != nil {
		switch resp.StatusCode {
		case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported, http.StatusGatewayTimeout:
			return false
		}
	}
	return isFailure(resp, err)
}

// discard drains a little of a dropped response and closes it, so that its
// connection can be reused.
func discard(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
