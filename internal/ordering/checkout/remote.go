package checkout

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/saga"
)

// Over returns the checkout's ports to inventory, payments and shipping
// as their calls on x (in process, or over the bus). This is ordering's
// anti-corruption layer: each maps the other context's refusals — by
// code and reason, which cross the bus intact — to a Rejection with the
// order's cancellation reason; any other error is the saga's to retry.
func Over(x *call.Exchange) (Stock, Payments, Shipping) {
	return stock{inventoryapi.Reserve.Bind(x), inventoryapi.Release.Bind(x), inventoryapi.Commit.Bind(x)},
		payments{paymentsapi.Pay.Bind(x), paymentsapi.Refund.Bind(x)},
		shipping{shippingapi.Arrange.Bind(x), shippingapi.Cancel.Bind(x)}
}

type stockCall = func(context.Context, inventoryapi.StockRequest) (call.None, error)

type stock struct{ reserve, release, commit stockCall }

func stockLines(lines []orderingapi.Line) []inventoryapi.Line {
	out := make([]inventoryapi.Line, len(lines))
	for i, l := range lines {
		out[i] = inventoryapi.Line{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	return out
}

func (s stock) Reserve(ctx context.Context, meta eventstore.Metadata, order string, lines []orderingapi.Line) error {
	_, err := s.reserve(ctx, inventoryapi.StockRequest{Meta: meta, OrderID: order, Lines: stockLines(lines)})
	switch {
	case err == nil:
		return nil
	case errs.ReasonOf(err) == inventoryapi.ReasonOutOfStock, errs.CodeOf(err) == errs.Unprocessable:
		return Reject(ordering.ReasonOutOfStock)
	case errs.ReasonOf(err) == inventoryapi.ReasonReservationClosed:
		return Reject(ordering.ReasonCancelledByCustomer)
	}
	return err
}

func (s stock) Release(ctx context.Context, meta eventstore.Metadata, order string, lines []orderingapi.Line) error {
	_, err := s.release(ctx, inventoryapi.StockRequest{Meta: meta, OrderID: order, Lines: stockLines(lines)})
	return err
}

func (s stock) Commit(ctx context.Context, meta eventstore.Metadata, order string) error {
	_, err := s.commit(ctx, inventoryapi.StockRequest{Meta: meta, OrderID: order})
	return err
}

type paymentCall = func(context.Context, paymentsapi.PaymentRequest) (call.None, error)

type payments struct{ pay, refund paymentCall }

func paymentRequest(meta eventstore.Metadata, p Payment) paymentsapi.PaymentRequest {
	return paymentsapi.PaymentRequest{Meta: meta, OrderID: p.OrderID, From: p.From, To: p.To, Amount: p.Amount}
}

func (c payments) Pay(ctx context.Context, meta eventstore.Metadata, p Payment) error {
	_, err := c.pay(ctx, paymentRequest(meta, p))
	switch reason, code := errs.ReasonOf(err), errs.CodeOf(err); {
	case err == nil:
		return nil
	case reason == paymentsapi.ReasonInsufficientFunds:
		return Reject(ordering.ReasonInsufficientFunds)
	case reason == paymentsapi.ReasonCancelled:
		return Reject(ordering.ReasonCancelledByCustomer)
	case code == errs.Conflict, code == errs.NotFound, code == errs.Unprocessable:
		return Reject(ordering.ReasonPaymentFailed)
	}
	return err
}

func (c payments) Refund(ctx context.Context, meta eventstore.Metadata, p Payment) error {
	_, err := c.refund(ctx, paymentRequest(meta, p))
	return err
}

type shipmentCall = func(context.Context, shippingapi.ShipmentRequest) (call.None, error)

type shipping struct{ arrange, cancel shipmentCall }

func (s shipping) Arrange(ctx context.Context, meta eventstore.Metadata, order string, to orderingapi.Address) error {
	addr := shippingapi.Address(to)
	_, err := s.arrange(ctx, shippingapi.ShipmentRequest{Meta: meta, OrderID: order, Address: &addr})
	switch reason := errs.ReasonOf(err); {
	case err == nil:
		return nil
	case reason == shippingapi.ReasonShippingFailed:
		return Reject(ordering.ReasonShippingFailed)
	case reason == shippingapi.ReasonShipmentCancelled:
		return Reject(ordering.ReasonCancelledByCustomer)
	}
	return err
}

func (s shipping) Cancel(ctx context.Context, meta eventstore.Metadata, order string) error {
	_, err := s.cancel(ctx, shippingapi.ShipmentRequest{Meta: meta, OrderID: order})
	return err
}

// Aborter returns ordering's abort of an order's checkout on engine: the
// saga stops going forward and compensates; a checkout that has ended or
// never started has nothing to abort.
func Aborter(engine interface {
	Abort(ctx context.Context, id, reason string) error
}) func(ctx context.Context, meta eventstore.Metadata, orderID string) error {
	return func(ctx context.Context, meta eventstore.Metadata, orderID string) error {
		err := engine.Abort(saga.WithMetadata(ctx, meta), SagaID(orderID), ordering.ReasonCancelledByCustomer)
		if errors.Is(err, saga.ErrNotRunning) || errors.Is(err, saga.ErrNotFound) {
			return nil
		}
		return err
	}
}
