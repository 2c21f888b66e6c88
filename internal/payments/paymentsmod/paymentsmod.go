// Package paymentsmod is the payments context as a module: event-sourced
// accounts with their read models, transfers run as sagas, the account
// API, and the calls payments answers (order payments, account opening,
// account owners).
package paymentsmod

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/api"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// Module declares the payments module.
var Module = module.Def{Name: "payments", Stream: module.EventsStream, Subjects: []string{"payments.>"}, New: New}

// usd is the currency of the accounts payments opens itself.
var usd = money.MustCurrency("USD")

// New builds the payments module: it opens the merchant account that
// receives order payments if it is missing.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	svc := app.NewService(p.Store)
	accounts, err := p.Project(ctx, readmodel.Projection{})
	if err != nil {
		return nil, err
	}
	if _, err := svc.Open(ctx, eventstore.Metadata{}, app.OpenAccount{ID: p.Settings.MerchantAccountID, OwnerID: "merchant",
		Initial: money.New(0, usd)}); err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
		return nil, err
	}
	saga.Register(p.Sagas, app.TransferSaga(svc))
	m := &module.Module{
		Routes:      api.New(svc, app.NewTransfers(svc, p.Sagas), readmodel.NewQueries(p.DB), accounts, p.Store).Register,
		Projections: []*projection.Runner{accounts},
		Answers:     append(Answers(svc), SagaAnswers(p.Sagas)...),
		Publish:     app.Publish,
		Service:     svc,
	}
	if p.Settings.CheckoutMode == module.Choreography {
		h, err := svc.Reactions(ctx, p.DB)
		if err != nil {
			return nil, err
		}
		m.Consumers = append(m.Consumers, module.Reaction("payments-checkout", app.ReactionSubjects, h))
	}
	return m, nil
}

// Answers are the calls payments answers, on svc.
func Answers(svc *app.Service) []call.Answer {
	payment := func(r paymentsapi.PaymentRequest) app.Payment {
		return app.OrderPayment(r.OrderID, r.From, r.To, r.Amount)
	}
	return []call.Answer{
		paymentsapi.Pay.Answer(func(ctx context.Context, r paymentsapi.PaymentRequest) (call.None, error) {
			return call.None{}, svc.Pay(ctx, r.Meta, payment(r))
		}),
		paymentsapi.Refund.Answer(func(ctx context.Context, r paymentsapi.PaymentRequest) (call.None, error) {
			err := svc.Unpay(ctx, r.Meta, payment(r))
			if errs.CodeOf(err) == errs.NotFound {
				return call.None{}, nil // no such account: nothing was paid
			}
			return call.None{}, err
		}),
		paymentsapi.OpenAccount.Answer(func(ctx context.Context, r paymentsapi.OpenAccountRequest) (string, error) {
			user := r.Meta.User
			if user == "" {
				return "", errs.Fields(errs.FieldError{Field: "meta.user", Message: "is required"})
			}
			id := "acct-" + user
			_, err := svc.Open(ctx, r.Meta, app.OpenAccount{ID: id, OwnerID: user, Initial: money.New(0, usd)})
			if err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
				return "", err
			}
			return id, nil
		}),
		paymentsapi.AccountOwner.Answer(func(ctx context.Context, r paymentsapi.AccountRequest) (call.Owner, error) {
			acc, _, err := svc.Get(ctx, r.AccountID)
			if err != nil {
				return call.Owner{}, err
			}
			if acc.Tenant == "" {
				acc.Tenant = auth.DefaultTenant
			}
			return call.Owner{Tenant: acc.Tenant, ID: acc.OwnerID}, nil
		}),
	}
}

// SagaAnswers are the calls by which the sagas API (ordering's) reads and
// retries the sagas payments keeps (transfers), on engine.
func SagaAnswers(engine *saga.Engine) []call.Answer {
	notFound := &errs.Error{Code: errs.NotFound, Reason: "saga_not_found", Message: "no such saga"}
	return []call.Answer{
		paymentsapi.GetSaga.Answer(func(ctx context.Context, r paymentsapi.SagaRequest) (paymentsapi.Saga, error) {
			in, err := engine.Get(ctx, r.ID)
			if errors.Is(err, saga.ErrNotFound) {
				return paymentsapi.Saga{}, notFound
			}
			if err != nil {
				return paymentsapi.Saga{}, err
			}
			return paymentsapi.Saga{Instance: in, Metadata: in.Metadata, StartedAt: in.StartedAt, UpdatedAt: in.UpdatedAt}, nil
		}),
		paymentsapi.RetrySaga.Answer(func(ctx context.Context, r paymentsapi.SagaRequest) (call.None, error) {
			err := engine.Retry(saga.WithMetadata(ctx, r.Meta), r.ID)
			switch {
			case errors.Is(err, saga.ErrNotFound):
				return call.None{}, notFound
			case errors.Is(err, saga.ErrNotFailed):
				return call.None{}, &errs.Error{Code: errs.Conflict, Reason: "saga_not_failed", Message: "only a Failed saga can be retried"}
			}
			return call.None{}, err
		}),
	}
}
