// Package resilience guards the gateway's calls to one upstream cluster
// with failsafe-go policies:
//
//   - the bulkhead bounds in-flight requests to the cluster;
//   - the circuit breaker opens after FailureThreshold failures among the
//     last FailureWindow attempts (consecutive failures when the window is
//     the threshold), lets a trial through after Delay (half-open) and
//     closes after SuccessThreshold trial successes. Failures are 5xx
//     answers, transport errors and attempt timeouts;
//   - a deadline bounds each attempt (time to response headers), and a
//     route's timeout bounds the whole request, retries and response body
//     included. An expired attempt fails with timeout.ErrExceeded;
//   - the retry policy retries, with exponential backoff and jitter, only
//     idempotent requests (see IsIdempotent): a failed POST may already
//     have taken effect, so it is never repeated unless it carries an
//     Idempotency-Key;
//   - the fallback answers at once with 503 problem+json (and
//     Retry-After) when the breaker is open or the bulkhead full, without
//     touching the upstream.
//
// Most requests succeed at their first attempt, and the gateway makes one
// call per request it proxies, so the first attempt takes the policies'
// standalone path: a bulkhead permit, a breaker permit, the attempt, its
// outcome recorded — the same state the executor would keep, without
// composing an execution per call (that cost the gateway about a tenth of
// its throughput; BenchmarkOverhead). Only when the first attempt is
// refused or fails in a way a retry could change does a failsafe-go
// executor take over, as Fallback(Retry(attempt)), with the first
// attempt's outcome as its own first: the retry policy decides whether,
// when and how often to try again, and the fallback turns a refusal into
// the 503. The attempt deadline is set on the attempt's context rather
// than by failsafe-go's timeout policy: with that policy, failsafehttp
// merges the request's and the execution's contexts with a goroutine per
// attempt.
//
// A Cluster is an http.RoundTripper: put it (or a Route of it) under an
// httputil.ReverseProxy, with a balance.Balancer's Transport under it so
// that each attempt goes to an instance of its own.
package resilience

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
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
	name     string
	cfg      Config
	next     http.RoundTripper
	breaker  circuitbreaker.CircuitBreaker[*http.Response]
	bulkhead bulkhead.Bulkhead[*http.Response]
	once     failsafe.Executor[*http.Response] // Fallback
	retried  failsafe.Executor[*http.Response] // Fallback(Retry)
	// inFlight counts the bulkhead's permits in use.
	inFlight atomic.Int64
}

// New returns the executor for cluster name, sending attempts through
// next (nil: http.DefaultTransport).
func New(name string, next http.RoundTripper, cfg Config) *Cluster {
	cfg.defaults()
	if next == nil {
		next = http.DefaultTransport
	}
	c := &Cluster{name: name, cfg: cfg, next: next}

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
	c.bulkhead = bulkhead.NewBuilder[*http.Response](cfg.MaxConcurrent).WithMaxWaitTime(cfg.MaxWait).Build()
	fb := fallback.NewBuilderWithFunc(c.reject).
		HandleErrors(circuitbreaker.ErrOpen, bulkhead.ErrFull).
		Build()
	retry := retrypolicy.NewBuilder[*http.Response]().
		HandleIf(isRetryable).
		AbortOnErrors(context.Canceled, circuitbreaker.ErrOpen, bulkhead.ErrFull, errRouteTimeout).
		WithMaxRetries(cfg.MaxRetries).
		WithBackoff(cfg.BackoffBase, cfg.BackoffMax).
		WithJitterFactor(0.5).
		ReturnLastFailure().
		OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[*http.Response]) {
			discard(e.LastResult()) // the failed attempt's answer is dropped
		}).
		Build()
	c.once = failsafe.With[*http.Response](fb)
	c.retried = failsafe.With[*http.Response](fb, retry)
	return c
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// State returns the breaker's state. An open breaker reports Open until
// the first request after its delay moves it to HalfOpen.
func (c *Cluster) State() State { return c.breaker.State() }

// InFlight returns how many requests hold a bulkhead permit now.
func (c *Cluster) InFlight() int { return int(c.inFlight.Load()) }

// MaxConcurrent returns the bulkhead's size: the most requests in flight.
func (c *Cluster) MaxConcurrent() int { return int(c.cfg.MaxConcurrent) }

// RouteOptions is what a route adds to its cluster's policies.
type RouteOptions struct {
	// Idempotent, if set, overrides IsIdempotent for the route's requests.
	Idempotent *bool
	// Timeout, if positive, bounds each of the route's requests as a
	// whole: attempts, retries and the response body.
	Timeout time.Duration
}

// Route returns a RoundTripper that sends a route's requests through c
// with opts. A gateway builds one per route, once, so that nothing per
// request has to carry them.
func (c *Cluster) Route(opts RouteOptions) http.RoundTripper { return &route{c: c, opts: opts} }

type route struct {
	c    *Cluster
	opts RouteOptions
}

func (r *route) RoundTrip(req *http.Request) (*http.Response, error) {
	idempotent := r.opts.Idempotent != nil && *r.opts.Idempotent
	if r.opts.Idempotent == nil {
		idempotent = IsIdempotent(req)
	}
	var deadline time.Time
	if r.opts.Timeout > 0 {
		deadline = time.Now().Add(r.opts.Timeout)
	}
	return r.c.roundTrip(req, idempotent, deadline)
}

// RoundTrip sends req through the policies, as a route with no options
// would. Retries happen only when IsIdempotent(req). The response is the upstream's (a failed attempt's
// last answer once retries are exhausted) or the fallback's 503. Errors
// are *errs.Error values httpapi.Error maps to statuses: Timeout (504)
// when attempts time out, Unavailable (503) when the upstream cannot be
// reached; a canceled or expired request context is returned as is.
func (c *Cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.roundTrip(req, IsIdempotent(req), time.Time{})
}

// roundTrip is RoundTrip with the route's answer to IsIdempotent and its
// deadline (zero: none).
func (c *Cluster) roundTrip(req *http.Request, idempotent bool, deadline time.Time) (*http.Response, error) {
	c.traceBreaker(req.Context())
	retries := idempotent && c.cfg.MaxRetries > 0
	if retries {
		if err := replayable(req); err != nil {
			return nil, fmt.Errorf("upstream %s: read the request body: %w", c.name, err)
		}
	}
	var resp *http.Response
	err := c.bulkhead.AcquirePermitWithMaxWait(req.Context(), c.cfg.MaxWait)
	if err == nil {
		c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		defer c.bulkhead.ReleasePermit()
		resp, err = c.attempt(req, deadline)
	} else {
		if req.Body != nil {
			req.Body.Close()
		}
		if !errors.Is(err, bulkhead.ErrFull) {
			return c.answer(req, nil, err) // the request ended while it waited
		}
	}
	if err == nil && !(retries && isRetryable(resp, nil)) {
		return resp, nil // the usual case: done at the first attempt
	}
	// A refusal or a failure: the policies decide what follows.
	resp, err = c.execute(req, idempotent, deadline, resp, err)
	return c.answer(req, resp, err)
}

// execute hands the first attempt's outcome to the failsafe-go executor
// as its own first attempt: the retry policy (idempotent requests only)
// decides about further attempts, the fallback about refusals.
func (c *Cluster) execute(req *http.Request, idempotent bool, deadline time.Time, resp *http.Response, err error) (*http.Response, error) {
	exec := c.once
	if idempotent {
		exec = c.retried
	}
	ctx := req.Context()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline) // bounds the backoff delays
		defer cancel()
	}
	handed := false
	r, e := exec.WithContext(ctx).GetWithExecution(func(ex failsafe.Execution[*http.Response]) (*http.Response, error) {
		if !handed {
			handed = true
			return resp, err
		}
		traceAttempt(req.Context(), ex.Attempts())
		next := req.WithContext(req.Context())
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			next.Body = body
		}
		return c.attempt(next, deadline)
	})
	if !handed {
		discard(resp) // the executor stopped before it took the first answer
	}
	if e != nil && !deadline.IsZero() && errors.Is(e, context.DeadlineExceeded) && req.Context().Err() == nil {
		e = fmt.Errorf("%w: %w", errRouteTimeout, e) // the route's time ran out between attempts
	}
	return r, e
}

// answer maps the policies' outcome to RoundTrip's.
func (c *Cluster) answer(req *http.Request, resp *http.Response, err error) (*http.Response, error) {
	if err == nil {
		return resp, nil
	}
	var rj *rejection
	switch {
	case errors.As(err, &rj):
		traceRejected(req.Context(), rj.reason)
		return problem.Response(req, http.StatusServiceUnavailable, rj.reason, rj.detail, rj.retryAfter), nil
	// An upstream that does not answer in time is unavailable for now: a
	// 503 with Retry-After, which a client may retry (a POST with its
	// Idempotency-Key), rather than a 504 it could not tell from a
	// deadline of its own.
	case errors.Is(err, errRouteTimeout):
		return nil, &errs.Error{Code: errs.Unavailable, Reason: "upstream_timeout", RetryAfter: time.Second,
			Message: fmt.Sprintf("upstream %s did not answer in time; retry shortly", c.name), Err: err}
	case req.Context().Err() != nil && !errors.Is(err, timeout.ErrExceeded):
		return nil, fmt.Errorf("upstream %s: %w", c.name, req.Context().Err())
	case errors.Is(err, timeout.ErrExceeded):
		return nil, &errs.Error{Code: errs.Unavailable, Reason: "upstream_timeout", RetryAfter: time.Second,
			Message: fmt.Sprintf("upstream %s did not answer within %v; retry shortly", c.name, c.cfg.AttemptTimeout), Err: err}
	}
	return nil, &errs.Error{Code: errs.Unavailable, Reason: "upstream_unavailable", RetryAfter: time.Second,
		Message: fmt.Sprintf("upstream %s is unavailable; retry shortly", c.name), Err: err}
}

// errRouteTimeout is the cause of an attempt ended by its route's
// timeout rather than its own deadline.
var errRouteTimeout = errors.New("the route's timeout expired")

// attempt is one call to the upstream, under a breaker permit, within
// AttemptTimeout (and the route's deadline, if any) until its response
// headers; the route's deadline, if any, also bounds reading the body.
// The outcome is recorded with the breaker.
func (c *Cluster) attempt(req *http.Request, deadline time.Time) (*http.Response, error) {
	if !c.breaker.TryAcquirePermit() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, circuitbreaker.ErrOpen
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	d := c.cfg.AttemptTimeout
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline))
	}
	timer := time.AfterFunc(d, func() { cancel(expired(deadline)) })
	resp, err := c.next.RoundTrip(req.WithContext(ctx))
	if !timer.Stop() {
		// The deadline passed, whatever the transport made of it.
		cause := expired(deadline)
		cancel(cause)
		if resp != nil {
			resp.Body.Close()
		}
		c.breaker.RecordError(timeout.ErrExceeded)
		return nil, fmt.Errorf("attempt: %w", cause)
	}
	if err != nil {
		cancel(nil)
		c.breaker.RecordError(err)
		return nil, err
	}
	c.breaker.RecordResult(resp)
	if !deadline.IsZero() {
		timer.Reset(time.Until(deadline)) // the route's time bounds the body
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel, timer: timer}
	return resp, nil
}

// expired is the cause of an attempt's end when its timer fires: the
// route's timeout once its deadline has passed, the attempt's own before.
func expired(deadline time.Time) error {
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return errRouteTimeout
	}
	return timeout.ErrExceeded
}

// cancelOnClose ends an attempt's context and timer when its body is
// closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.timer.Stop()
	b.cancel(nil)
	return err
}

// replayable makes sure req's body can be sent again (GetBody) by a
// retry, reading it into memory if it must.
func replayable(req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return nil
	}
	data, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return err
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return nil
}

// rejection is the fallback's answer to an open breaker or a full
// bulkhead; RoundTrip turns it into a 503 problem for its request.
type rejection struct {
	reason, detail string
	retryAfter     int // seconds
}

func (r *rejection) Error() string { return r.detail }

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

// IsIdempotent reports whether req may be sent more than once: true for
// GET, HEAD and OPTIONS and for a POST with an Idempotency-Key (a route
// may say otherwise: RouteOptions.Idempotent).
func IsIdempotent(req *http.Request) bool {
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
