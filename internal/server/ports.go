package server

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/inventory"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/ordering"
	ordapp "github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/payments"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/shipping"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/money"
)

// The checkout saga's ports, implemented in process by the contexts'
// application services. Each maps the context's refusals to a
// checkout.Rejection with the order's cancellation reason.

type stockPort struct{ svc *invapp.Service }

func stockLines(lines []orderingapi.Line) []inventory.Line {
	ls := make([]inventory.Line, len(lines))
	for i, l := range lines {
		ls[i] = inventory.Line{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	return ls
}

func (p stockPort) Reserve(ctx context.Context, meta eventstore.Metadata, order string, lines []orderingapi.Line) error {
	err := p.svc.Reserve(ctx, meta, order, stockLines(lines))
	switch {
	case errors.Is(err, inventory.ErrOutOfStock):
		return checkout.Reject(ordering.ReasonOutOfStock)
	case errors.Is(err, inventory.ErrReservationClosed):
		return checkout.Reject(ordering.ReasonCancelledByCustomer)
	case errs.CodeOf(err) == errs.Unprocessable:
		return checkout.Reject(ordering.ReasonOutOfStock)
	}
	return err
}

func (p stockPort) Release(ctx context.Context, meta eventstore.Metadata, order string, lines []orderingapi.Line) error {
	return p.svc.Release(ctx, meta, order, stockLines(lines))
}

func (p stockPort) Commit(ctx context.Context, meta eventstore.Metadata, order string) error {
	return p.svc.Commit(ctx, meta, order)
}

type paymentsPort struct{ svc *payapp.Service }

func (p paymentsPort) payment(c checkout.Payment) payapp.Payment {
	return payapp.OrderPayment(c.OrderID, c.From, c.To, c.Amount)
}

func (p paymentsPort) Pay(ctx context.Context, meta eventstore.Metadata, c checkout.Payment) error {
	err := p.svc.Pay(ctx, meta, p.payment(c))
	switch reason := errs.ReasonOf(err); {
	case err == nil:
		return nil
	case reason == payments.ReasonInsufficientFunds:
		return checkout.Reject(ordering.ReasonInsufficientFunds)
	case reason == payments.ReasonCancelled:
		return checkout.Reject(ordering.ReasonCancelledByCustomer)
	case errs.CodeOf(err) == errs.Conflict, errs.CodeOf(err) == errs.NotFound, errs.CodeOf(err) == errs.Unprocessable:
		return checkout.Reject(ordering.ReasonPaymentFailed)
	}
	return err
}

func (p paymentsPort) Refund(ctx context.Context, meta eventstore.Metadata, c checkout.Payment) error {
	err := p.svc.Unpay(ctx, meta, p.payment(c))
	if errs.CodeOf(err) == errs.NotFound {
		return nil // no such account: nothing was paid
	}
	return err
}

type shippingPort struct{ svc *shipapp.Service }

func (p shippingPort) Arrange(ctx context.Context, meta eventstore.Metadata, order string, to orderingapi.Address) error {
	err := p.svc.Arrange(ctx, meta, order, shipping.Address(to))
	switch {
	case errors.Is(err, shipping.ErrShippingFailed):
		return checkout.Reject(ordering.ReasonShippingFailed)
	case errors.Is(err, shipping.ErrCancelled):
		return checkout.Reject(ordering.ReasonCancelledByCustomer)
	}
	return err
}

func (p shippingPort) Cancel(ctx context.Context, meta eventstore.Metadata, order string) error {
	return p.svc.Cancel(ctx, meta, order)
}

// productsPort lets inventory check that a product exists in the catalog.
type productsPort struct {
	store interface {
		Get(ctx context.Context, id string) (catalog.Product, error)
	}
}

func (p productsPort) Exists(ctx context.Context, id string) (bool, error) {
	_, err := p.store.Get(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// accountsPort opens a customer's payments account for identity: one USD
// account per user, its ID derived from the user's, so a repeated call
// (a registration retried) opens nothing new.
type accountsPort struct{ svc *payapp.Service }

func (p accountsPort) OpenFor(ctx context.Context, tenant, userID string) (string, error) {
	return p.open(ctx, openMeta(ctx, tenant, userID))
}

// openMeta is the metadata of opening userID's account: the registration
// request's tenant, user and trace context.
func openMeta(ctx context.Context, tenant, userID string) eventstore.Metadata {
	o := identity.OriginFrom(ctx)
	return eventstore.Metadata{Tenant: tenant, User: userID, CorrelationID: o.RequestID, TraceParent: o.TraceParent}
}

func (p accountsPort) open(ctx context.Context, meta eventstore.Metadata) (string, error) {
	userID := meta.User
	id := "acct-" + userID
	_, err := p.svc.Open(ctx, meta, payapp.OpenAccount{ID: id, OwnerID: userID,
		Initial: money.New(0, money.MustCurrency("USD"))})
	if err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
		return "", err
	}
	return id, nil
}

// ordersPort tells shipping (and the sagas API) whose an order is.
type ordersPort struct{ svc *ordapp.Service }

func (p ordersPort) Owner(ctx context.Context, orderID string) (tenant, customer string, err error) {
	o, _, err := p.svc.Get(ctx, orderID)
	if err != nil {
		return "", "", err
	}
	return o.Tenant, o.CustomerID, nil
}

// accountOwners tells ordering whose a payments account is.
type accountOwnersPort struct{ svc *payapp.Service }

func (p accountOwnersPort) Owner(ctx context.Context, accountID string) (tenant, owner string, err error) {
	acc, _, err := p.svc.Get(ctx, accountID)
	if err != nil {
		return "", "", err
	}
	if acc.Tenant == "" {
		acc.Tenant = auth.DefaultTenant
	}
	return acc.Tenant, acc.OwnerID, nil
}
