// Package checkout takes an order from Pending to Confirmed or Cancelled,
// in one of two modes.
//
// Orchestration (Saga): a saga-engine definition drives the steps
//
//	reserve stock → capture payment → arrange shipment → confirm
//
// and compensates them in reverse (cancel shipment, refund, release stock)
// before cancelling the order with a reason. The other contexts are
// reached through ports declared here (Stock, Payments, Shipping), whose
// commands are idempotent per order; the wiring decides what implements
// them. A Starter starts one saga per OrderPlaced event, reading the event
// log, so an order placed just before a crash still gets its saga.
//
// Choreography has no orchestrator: each context reacts to the others'
// integration events (see each context's Reactions); Watchdog cancels
// orders that stay Pending too long.
package checkout

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/saga"
	"go.opentelemetry.io/otel/trace"
)

// SagaType is the checkout saga's type.
const SagaType = "checkout"

// SagaID is the checkout saga of order id.
func SagaID(orderID string) string { return "checkout-" + orderID }

// Rejection is a port's business refusal, with a cancellation reason
// (ordering.Reason*). Any other error from a port is worth retrying.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string { return "checkout: rejected: " + r.Reason }

// Reject returns a Rejection with reason.
func Reject(reason string) error { return &Rejection{Reason: reason} }

// Stock is the inventory's part of a checkout.
type Stock interface {
	Reserve(ctx context.Context, meta eventstore.Metadata, orderID string, lines []orderingapi.Line) error
	// Release gives back what the order holds, lines included (a
	// reservation that crashed before recording may not name them).
	Release(ctx context.Context, meta eventstore.Metadata, orderID string, lines []orderingapi.Line) error
	Commit(ctx context.Context, meta eventstore.Metadata, orderID string) error
}

// Payment is an order's payment.
type Payment struct {
	OrderID string
	From    string
	To      string
	Amount  money.Money
}

// Payments is the payments' part of a checkout.
type Payments interface {
	Pay(ctx context.Context, meta eventstore.Metadata, p Payment) error
	Refund(ctx context.Context, meta eventstore.Metadata, p Payment) error
}

// Shipping is the shipping's part of a checkout.
type Shipping interface {
	Arrange(ctx context.Context, meta eventstore.Metadata, orderID string, to orderingapi.Address) error
	Cancel(ctx context.Context, meta eventstore.Metadata, orderID string) error
}

// Data is a checkout saga's data.
type Data struct {
	OrderID  string              `json:"order_id"`
	Lines    []orderingapi.Line  `json:"lines"`
	Total    money.Money         `json:"total"`
	From     string              `json:"from"`
	To       string              `json:"to"`
	Address  orderingapi.Address `json:"address"`
	Customer string              `json:"customer_id"`
}

func (d Data) payment() Payment {
	return Payment{OrderID: d.OrderID, From: d.From, To: d.To, Amount: d.Total}
}

// Ports are what the checkout saga drives.
type Ports struct {
	Orders   *app.Service
	Stock    Stock
	Payments Payments
	Shipping Shipping
	// StepDeadline bounds each step over all its attempts (default 30s);
	// a step past it cancels the order with reason "timeout".
	StepDeadline time.Duration
}

// untilDeadline lets a step with a deadline retry a failing dependency
// (a store, the bus, the carrier's open breaker) until the deadline
// rather than a fixed number of times: an outage shorter than the
// deadline delays a checkout instead of cancelling it.
const untilDeadline = math.MaxInt32

func fail(err error) error {
	var r *Rejection
	if errors.As(err, &r) {
		return saga.Fail(r.Reason)
	}
	return err
}

// Saga returns the checkout saga's definition on p.
func Saga(p Ports) saga.Definition[Data] {
	if p.StepDeadline <= 0 {
		p.StepDeadline = 30 * time.Second
	}
	// What a step writes carries the tenant, user, correlation and trace
	// context of the request that placed the order (the order's ID
	// correlates a checkout started without one), caused by the step's
	// attempt.
	meta := func(ctx context.Context, x *saga.Exec[Data]) eventstore.Metadata {
		trace.SpanFromContext(ctx).SetAttributes(tracing.ServiceKey.String("ordering"), tracing.OrderKey.String(x.Data.OrderID))
		m, _ := saga.MetadataFrom(ctx)
		m.CorrelationID, m.CausationID = cmp.Or(m.CorrelationID, x.Data.OrderID), x.AttemptID()
		return m
	}
	return saga.Definition[Data]{
		Type: SagaType,
		// Payment starts while the reservation's completion is written,
		// shipment while the payment's. Every compensation is safe for an
		// action that never ran: a release, refund or shipment
		// cancellation with nothing to undo leaves a tombstone that
		// refuses the action if it comes late.
		Overlap: true,
		Steps: []saga.Step[Data]{
			{
				Name: "reserve_stock",
				Action: func(ctx context.Context, x *saga.Exec[Data]) error {
					return fail(p.Stock.Reserve(ctx, meta(ctx, x), x.Data.OrderID, x.Data.Lines))
				},
				Compensate: func(ctx context.Context, x *saga.Exec[Data]) error {
					return p.Stock.Release(ctx, meta(ctx, x), x.Data.OrderID, x.Data.Lines)
				},
				Deadline: p.StepDeadline, MaxAttempts: untilDeadline,
			},
			{
				Name: "capture_payment",
				Action: func(ctx context.Context, x *saga.Exec[Data]) error {
					return fail(p.Payments.Pay(ctx, meta(ctx, x), x.Data.payment()))
				},
				Compensate: func(ctx context.Context, x *saga.Exec[Data]) error {
					return p.Payments.Refund(ctx, meta(ctx, x), x.Data.payment())
				},
				Deadline: p.StepDeadline, MaxAttempts: untilDeadline,
			},
			{
				Name: "arrange_shipment",
				Action: func(ctx context.Context, x *saga.Exec[Data]) error {
					return fail(p.Shipping.Arrange(ctx, meta(ctx, x), x.Data.OrderID, x.Data.Address))
				},
				Compensate: func(ctx context.Context, x *saga.Exec[Data]) error {
					return p.Shipping.Cancel(ctx, meta(ctx, x), x.Data.OrderID)
				},
				Deadline: p.StepDeadline, MaxAttempts: untilDeadline,
			},
			{
				// The pivot: once the order is confirmed nothing may undo
				// it, so this step has no deadline and is retried until it
				// succeeds or the customer's cancel refuses it; what
				// follows (shipping the held stock) is the end hook's,
				// retried until done.
				Name: "confirm_order",
				Action: func(ctx context.Context, x *saga.Exec[Data]) error {
					_, _, err := p.Orders.Confirm(ctx, meta(ctx, x), x.Data.OrderID)
					if errors.Is(err, ordering.ErrCancelled) {
						return saga.Fail(ordering.ReasonCancelledByCustomer)
					}
					return err
				},
				MaxAttempts: math.MaxInt32,
			},
		},
		OnEnd: func(ctx context.Context, id string, status saga.Status, reason string, d Data) error {
			m, _ := saga.MetadataFrom(ctx)
			m.CorrelationID, m.CausationID = cmp.Or(m.CorrelationID, d.OrderID), id
			if status == saga.Completed {
				return p.Stock.Commit(ctx, m, d.OrderID)
			}
			if status != saga.Compensated {
				return nil
			}
			o, _, err := p.Orders.Get(ctx, d.OrderID)
			if err != nil {
				return err
			}
			_, _, err = p.Orders.Cancel(ctx, m, d.OrderID, CancelReason(reason, o.CancelRequested))
			return err
		},
	}
}

// CancelReason maps why a checkout stopped to the order's reason.
func CancelReason(reason string, customerAsked bool) string {
	switch {
	case customerAsked || reason == "cancelled" || reason == "reservation_closed" || reason == "shipment_cancelled":
		return ordering.ReasonCancelledByCustomer
	case reason == ordering.ReasonOutOfStock, reason == ordering.ReasonInsufficientFunds, reason == ordering.ReasonShippingFailed,
		reason == ordering.ReasonTimeout, reason == ordering.ReasonCancelledByCustomer:
		return reason
	case reason == "account_closed" || reason == ordering.ReasonPaymentFailed || reason == "account_not_found" || reason == "currency_mismatch":
		return ordering.ReasonPaymentFailed
	}
	return ordering.ReasonTimeout // retries ran out: the step did not finish in time
}

// DataOf builds a checkout's data from a placed order.
func DataOf(o ordering.Order) Data {
	d := Data{OrderID: o.ID, Total: o.Total, From: o.PaymentAccountID, To: o.MerchantAccountID,
		Address: orderingapi.Address(o.ShippingAddress), Customer: o.CustomerID}
	for _, it := range o.Items {
		d.Lines = append(d.Lines, orderingapi.Line{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return d
}

// Starter is a projection that starts a checkout saga for every
// OrderPlaced event (Start is idempotent, so a replay starts nothing twice).
type Starter struct {
	// Engine runs the sagas.
	Engine *saga.Engine
	// Parallel caps concurrent starts within a batch (0: 32).
	Parallel int
}

// Name implements projection.Projection.
func (Starter) Name() string { return "ordering.checkout_starter" }

// Setup implements projection.Projection.
func (Starter) Setup(context.Context, *sql.DB) error { return nil }

// Reset implements projection.Projection.
func (Starter) Reset(context.Context, *sql.Tx) error { return nil }

// Apply implements projection.Projection: the starts happen in React.
func (Starter) Apply(context.Context, *sql.Tx, []eventstore.Record) error { return nil }

// React implements projection.Reactor: it starts the batch's sagas
// outside the checkpoint's transaction.
func (s Starter) React(ctx context.Context, batch []eventstore.Record) error {
	g, ctx := errgroup.WithContext(ctx)
	limit := s.Parallel
	if limit <= 0 {
		limit = 32
	}
	g.SetLimit(limit)
	for _, r := range batch {
		if r.Type != (ordering.OrderPlaced{}).EventType() {
			continue
		}
		e, err := app.Decode(r)
		if err != nil {
			return err
		}
		o := e.(ordering.OrderPlaced).Order
		g.Go(func() error {
			if _, err := s.Engine.Start(saga.WithMetadata(ctx, r.Metadata), SagaType, SagaID(o.ID), DataOf(o)); err != nil {
				return fmt.Errorf("checkout: start saga of order %s: %w", o.ID, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Watchdog cancels orders that stayed Pending longer than Timeout, with
// reason "timeout" (choreography's deadline: no orchestrator tracks steps).
type Watchdog struct {
	Orders  *app.Service
	Queries *app.OrderQueries
	Timeout time.Duration
	Logger  *slog.Logger
}

// Run checks every second until ctx ends.
func (w Watchdog) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		page, err := w.Queries.List(ctx, app.Filter{Status: ordering.StatusPending, OlderThan: time.Now().Add(-w.Timeout), Limit: 500})
		if err != nil {
			w.Logger.Warn("checkout watchdog", "err", err)
			continue
		}
		for _, o := range page.Items {
			if _, _, err := w.Orders.Cancel(ctx, eventstore.Metadata{CorrelationID: o.ID}, o.ID, ordering.ReasonTimeout); err != nil &&
				!errors.Is(err, ordering.ErrAlreadyConfirmed) {
				w.Logger.Warn("checkout watchdog: cancel", "order", o.ID, "err", err)
			}
		}
	}
}
