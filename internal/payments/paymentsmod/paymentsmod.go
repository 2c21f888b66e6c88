// Package paymentsmod is the payments context as a module: event-sourced
// accounts with their read models, transfers run as sagas, the account
// API, and the calls payments answers (order payments, account opening,
// account owners).
package paymentsmod

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/api"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// Module declares the payments module.
var Module = module.Def{Name: "payments", Stream: module.EventsStream, Subjects: []string{"payments.>"}, New: New, Partitioned: true}

// usd is the currency of the accounts payments opens itself.
var usd = money.MustCurrency("USD")

// New builds the payments module over the platform's partitions: each
// account and each transfer lives in the partition of its ID; the
// accounts read model is fed by every partition. It opens the merchant
// account that receives order payments if it is missing.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	if len(p.Partitions) == 0 {
		return nil, errors.New("payments: no partitions")
	}
	stores := make([]eventstore.Store, len(p.Partitions))
	engines := make([]*saga.Engine, len(p.Partitions))
	runners := make(waiters, len(p.Partitions))
	for k, part := range p.Partitions {
		stores[k], engines[k] = part.Store, part.Sagas
		r, err := part.Project(ctx, readmodel.Projection{Partition: k, Of: len(p.Partitions)})
		if err != nil {
			return nil, err
		}
		runners[k] = r
	}
	svc := app.NewService(stores...)
	if _, err := svc.Open(ctx, eventstore.Metadata{}, app.OpenAccount{ID: p.Settings.MerchantAccountID, OwnerID: "merchant",
		Initial: money.New(0, usd)}); err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
		return nil, err
	}
	for _, e := range engines {
		saga.Register(e, app.TransferSaga(svc))
	}
	transfers := app.NewTransfers(svc, engines...)
	m := &module.Module{
		Routes:       api.New(svc, transfers, readmodel.NewQueries(p.DB), runners).Register,
		Projections:  runners,
		Answers:      append(Answers(svc), SagaAnswers(transfers.EngineOf)...),
		Publish:      app.Publish,
		Service:      svc,
		PartitionKey: PartitionKey,
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

// PartitionKey is the account or transfer whose partition a call's
// request is about (module.Module.PartitionKey): the paying account of a
// payment or refund, the account asked about, the account opened for
// the caller, the transfer of a saga read or retried.
func PartitionKey(subject string, request json.RawMessage) string {
	var r struct {
		From      string `json:"from"`
		AccountID string `json:"account_id"`
		ID        string `json:"id"`
		Meta      struct {
			User string `json:"user"`
		} `json:"meta"`
	}
	if json.Unmarshal(request, &r) != nil {
		return ""
	}
	switch subject {
	case paymentsapi.Pay.Subject, paymentsapi.Refund.Subject:
		return r.From
	case paymentsapi.AccountOwner.Subject:
		return r.AccountID
	case paymentsapi.OpenAccount.Subject:
		if r.Meta.User != "" {
			return "acct-" + r.Meta.User
		}
	case paymentsapi.GetSaga.Subject, paymentsapi.RetrySaga.Subject:
		id, _ := strings.CutPrefix(r.ID, paymentsapi.TransferSagaPrefix)
		return id
	}
	return ""
}

// waiters are the accounts read model's runners, one per partition: an
// Agora-Min-Position token names a partition's log ("payments-p2.17").
type waiters []*projection.Runner

// WaitFor implements httpapi.Waiter for a bare position, which names no
// partition: with one partition it is that partition's; with more,
// nothing can be waited for.
func (w waiters) WaitFor(ctx context.Context, pos uint64) error {
	if len(w) == 1 {
		return w[0].WaitFor(ctx, pos)
	}
	return nil
}

// WaiterOf implements httpapi.LogWaiter.
func (w waiters) WaiterOf(log string) httpapi.Waiter {
	if k, ok := partition.ParseLog(log); ok && k < len(w) {
		return w[k]
	}
	return nil
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
// retries the sagas payments keeps (transfers), each on the engine
// engineOf names (its partition's).
func SagaAnswers(engineOf func(sagaID string) *saga.Engine) []call.Answer {
	notFound := &errs.Error{Code: errs.NotFound, Reason: "saga_not_found", Message: "no such saga"}
	return []call.Answer{
		paymentsapi.GetSaga.Answer(func(ctx context.Context, r paymentsapi.SagaRequest) (paymentsapi.Saga, error) {
			in, err := engineOf(r.ID).Get(ctx, r.ID)
			if errors.Is(err, saga.ErrNotFound) {
				return paymentsapi.Saga{}, notFound
			}
			if err != nil {
				return paymentsapi.Saga{}, err
			}
			return paymentsapi.Saga{Instance: in, Metadata: in.Metadata, StartedAt: in.StartedAt, UpdatedAt: in.UpdatedAt}, nil
		}),
		paymentsapi.RetrySaga.Answer(func(ctx context.Context, r paymentsapi.SagaRequest) (call.None, error) {
			err := engineOf(r.ID).Retry(saga.WithMetadata(ctx, r.Meta), r.ID)
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
