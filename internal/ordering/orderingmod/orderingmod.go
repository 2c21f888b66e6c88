// Package orderingmod is the ordering context as a module: the Order
// aggregate with its read model and API, the checkout — orchestrated by
// the saga engine or choreographed over the bus — and the sagas API.
// Prices come from ordering's own model of the catalog's products
// (package products), kept by the catalog's events and filled once from
// the catalog when empty; an order's payment account is asked of
// payments, and the checkout's steps of inventory, payments and
// shipping, all through their published calls.
package orderingmod

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bounded"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/api"
	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/ordering/products"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/projection"
	"github.com/agora-commerce/agora/saga"
)

// Module declares the ordering module.
var Module = module.Def{Name: "ordering", Stream: module.EventsStream, Subjects: []string{"ordering.>"}, New: New,
	SagaDeadlines: SagaDeadlines}

// SagaDeadlines gives the checkout saga's deadline under s: its steps'
// deadlines (each the checkout timeout) added up.
func SagaDeadlines(s module.Settings) map[string]time.Duration {
	return map[string]time.Duration{checkout.SagaType: checkout.Saga(checkout.Ports{StepDeadline: s.CheckoutTimeout}).Deadline()}
}

// Promotions are the promotion codes on offer.
var Promotions = []ordering.Promotion{
	{Code: "WELCOME10", Kind: ordering.Percentage, BasisPoints: 1000},
	{Code: "FIVEOFF", Kind: ordering.FixedAmount, Amount: money.New(500, money.MustCurrency("USD"))},
}

// PricesConsumer is the durable consumer of the catalog's events that
// keeps ordering's price model: from the stream's beginning, one message
// at a time across every ordering instance, so that the model's position
// (the last catalog position applied) vouches for everything before it.
func PricesConsumer(model *products.Model) module.Consumer {
	return module.Consumer{Consumer: messaging.Consumer{Name: "ordering-prices", Stream: module.CatalogStream,
		Subjects: products.Subjects, Concurrency: 1, InFlight: 1, AckWait: 30 * time.Second}, Handle: model.Handle}
}

// ownersKept bounds the payment accounts whose owner ordering remembers
// (about 150 bytes each).
const ownersKept = 1 << 14

// New builds the ordering module in the settings' checkout mode.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	orchestrated := p.Settings.CheckoutMode != module.Choreography
	owner := paymentsapi.AccountOwner.Bind(p.Calls)
	// An account's owner and tenant are set when it opens and never
	// change, so an answer is kept (at most ownersKept accounts): a
	// placement by a returning customer asks payments nothing.
	var ownersMu sync.Mutex
	owners := bounded.New[string, call.Owner](ownersKept)
	accounts := call.OwnerFunc(func(ctx context.Context, id string) (string, string, error) {
		ownersMu.Lock()
		o, ok := owners.Get(id)
		ownersMu.Unlock()
		if ok {
			return o.Tenant, o.ID, nil
		}
		o, err := owner(ctx, paymentsapi.AccountRequest{AccountID: id})
		if err == nil && o.ID != "" {
			ownersMu.Lock()
			owners.Put(id, o)
			ownersMu.Unlock()
		}
		return o.Tenant, o.ID, err
	})
	model, err := products.Open(ctx, p.DB, products.Options{Postgres: p.Settings.Postgres,
		Pages: catalogapi.Products.Bind(p.Calls), Logger: p.Logger})
	if err != nil {
		return nil, err
	}
	opts := app.Options{Catalog: model, Accounts: accounts, Promotions: Promotions,
		MerchantAccountID: p.Settings.MerchantAccountID}
	// A checkout ends when its order does, in either mode: submit → terminal.
	opts.Ended = func(o ordering.Order) {
		p.Metrics.CheckoutEnded(o.Status == ordering.StatusConfirmed, o.Reason, o.UpdatedAt.Sub(o.CreatedAt))
	}
	if orchestrated && !p.Settings.Postgres {
		// The checkout starts as soon as the order is placed; the
		// Starter projection starts those a crash kept from starting
		// (Start is idempotent). On PostgreSQL, where several instances
		// may run, the Starter alone starts every checkout, once (its
		// runners are shared and only the one applying a batch reacts):
		// a saga started in two instances is driven by both engines,
		// since each sees its own Start succeed, and every step then runs
		// twice.
		opts.Placed = func(meta eventstore.Metadata, o ordering.Order) {
			go func() {
				ctx, cancel := context.WithTimeout(saga.WithMetadata(context.Background(), meta), 10*time.Second)
				defer cancel()
				if _, err := p.Sagas.Start(ctx, checkout.SagaType, checkout.SagaID(o.ID), checkout.DataOf(o)); err != nil {
					p.Logger.Debug("checkout: early start failed; the starter will start it", "order", o.ID, "err", err)
				}
			}()
		}
	}
	if orchestrated {
		opts.Abort = checkout.Aborter(p.Sagas)
	}
	svc := app.NewService(p.Store, opts)
	orders, err := p.Project(ctx, app.Orders{})
	if err != nil {
		return nil, err
	}
	queries := app.NewOrderQueries(p.DB)
	p.Metrics.CheckoutsInFlight(queries.CountPending)
	sagaID := func(string) string { return "" }
	m := &module.Module{
		Projections: []*projection.Runner{orders},
		Consumers:   []module.Consumer{PricesConsumer(model)},
		Daemons:     []func(context.Context) error{model.Run},
		Answers:     Answers(svc),
		Publish:     app.Publish,
		Service:     svc,
	}
	if orchestrated {
		stock, pay, ship := checkout.Over(p.Calls)
		saga.Register(p.Sagas, checkout.Saga(checkout.Ports{Orders: svc, Stock: stock, Payments: pay, Shipping: ship,
			StepDeadline: p.Settings.CheckoutTimeout}))
		starter, err := p.Project(ctx, checkout.Starter{Engine: p.Sagas})
		if err != nil {
			return nil, err
		}
		m.Projections = append(m.Projections, starter)
		sagaID = checkout.SagaID
	} else {
		m.Consumers = append(m.Consumers, module.Reaction("ordering-checkout", app.ReactionSubjects, svc.Reactions()))
		wd := checkout.Watchdog{Orders: svc, Queries: queries, Timeout: p.Settings.CheckoutTimeout, Logger: p.Logger}
		m.Daemons = append(m.Daemons, wd.Run)
	}
	orderAPI := api.New(svc, queries, orders, model, sagaID, p.Store)
	sagasAPI := api.NewSagas(app.NewSagas(p.Sagas, svc, accounts, transferSagas{paymentsapi.GetSaga.Bind(p.Calls), paymentsapi.RetrySaga.Bind(p.Calls)}))
	m.Routes = func(mux *http.ServeMux) {
		orderAPI.Register(mux)
		sagasAPI.Register(mux)
	}
	return m, nil
}

// Answers are the calls ordering answers, on svc.
func Answers(svc *app.Service) []call.Answer {
	return []call.Answer{
		orderingapi.OrderOwner.Answer(func(ctx context.Context, r orderingapi.OrderRequest) (call.Owner, error) {
			o, _, err := svc.Get(ctx, r.OrderID)
			if err != nil {
				return call.Owner{}, err
			}
			return call.Owner{Tenant: o.Tenant, ID: o.CustomerID}, nil
		}),
	}
}

// transferSagas are the sagas payments keeps (transfers), read and
// retried through its calls.
type transferSagas struct {
	get   func(context.Context, paymentsapi.SagaRequest) (paymentsapi.Saga, error)
	retry func(context.Context, paymentsapi.SagaRequest) (call.None, error)
}

func (t transferSagas) Get(ctx context.Context, id string) (saga.Instance, error) {
	if !strings.HasPrefix(id, paymentsapi.TransferSagaPrefix) {
		return saga.Instance{}, saga.ErrNotFound // not payments' either
	}
	s, err := t.get(ctx, paymentsapi.SagaRequest{ID: id})
	if errs.ReasonOf(err) == "saga_not_found" {
		return saga.Instance{}, saga.ErrNotFound
	}
	if err != nil {
		return saga.Instance{}, err
	}
	in := s.Instance
	in.Metadata, in.StartedAt, in.UpdatedAt = s.Metadata, s.StartedAt, s.UpdatedAt
	return in, nil
}

func (t transferSagas) Retry(ctx context.Context, meta eventstore.Metadata, id string) error {
	_, err := t.retry(ctx, paymentsapi.SagaRequest{ID: id, Meta: meta})
	switch errs.ReasonOf(err) {
	case "saga_not_found":
		return saga.ErrNotFound
	case "saga_not_failed":
		return saga.ErrNotFailed
	}
	return err
}
