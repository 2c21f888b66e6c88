package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/agora-commerce/agora/internal/shipping"
)

// ErrCarrierUnavailable answers a booking while the carrier's breaker is
// open: refused at once, without calling the carrier; worth retrying.
var ErrCarrierUnavailable = errors.New("shipping: the carrier is unavailable (breaker open)")

// GuardOptions tune Guard. Zero fields take the defaults shown.
type GuardOptions struct {
	// Timeout bounds each call: a carrier slower than that is failing
	// (default 1s).
	Timeout time.Duration
	// Failures of the last Window calls open the breaker (default 5 of 10).
	Failures, Window uint
	// Delay is how long the breaker stays open before a trial call
	// (default 5s).
	Delay time.Duration
	// Logger receives the breaker's state changes (default slog.Default()).
	Logger *slog.Logger
}

// Guarded is a Carrier behind a per-call timeout and a circuit breaker:
// a carrier that fails or slows down is left alone for a while, and
// shipments asked for meanwhile are refused at once (ErrCarrierUnavailable,
// which the checkout retries) rather than each waiting for it. Refusals
// (ErrRefused) are answers, not failures.
type Guarded struct {
	next    Carrier
	timeout time.Duration
	breaker circuitbreaker.CircuitBreaker[any]
}

// Guard wraps next.
func Guard(next Carrier, o GuardOptions) *Guarded {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Failures == 0 || o.Window == 0 {
		o.Failures, o.Window = 5, 10
	}
	if o.Delay <= 0 {
		o.Delay = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cb := circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return err != nil && !errors.Is(err, ErrRefused) }).
		WithFailureThresholdRatio(o.Failures, o.Window).
		WithDelay(o.Delay).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			o.Logger.Warn("shipping: carrier breaker "+e.NewState.String(), "from", e.OldState.String())
		}).
		Build()
	return &Guarded{next: next, timeout: o.Timeout, breaker: cb}
}

// State is the breaker's state: "closed", "open" or "half-open".
func (g *Guarded) State() string { return g.breaker.State().String() }

// Book implements Carrier.
func (g *Guarded) Book(ctx context.Context, order string, addr shipping.Address) (name, tracking string, err error) {
	err = g.call(ctx, func(ctx context.Context) error {
		var err error
		name, tracking, err = g.next.Book(ctx, order, addr)
		return err
	})
	return name, tracking, err
}

// Cancel implements Carrier.
func (g *Guarded) Cancel(ctx context.Context, tracking string) error {
	return g.call(ctx, func(ctx context.Context) error { return g.next.Cancel(ctx, tracking) })
}

func (g *Guarded) call(ctx context.Context, f func(context.Context) error) error {
	if !g.breaker.TryAcquirePermit() {
		return ErrCarrierUnavailable
	}
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	err := f(cctx)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("shipping: the carrier did not answer within %v: %w", g.timeout, err)
	}
	if ctx.Err() != nil && err != nil {
		// The caller gave up: not the carrier's failure. Recorded as a
		// success so that a half-open breaker's trial permit is returned.
		g.breaker.RecordSuccess()
		return err
	}
	if err != nil {
		g.breaker.RecordError(err)
	} else {
		g.breaker.RecordSuccess()
	}
	return err
}
