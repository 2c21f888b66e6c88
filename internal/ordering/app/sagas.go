package app

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/saga"
)

// Sagas shows the platform's sagas — checkouts and transfers — to admins
// of the tenant whose saga it is, and retries a Failed one.
type Sagas struct {
	engine *saga.Engine
	orders *Service
	// accounts says whose an account is, for transfers that started
	// before sagas recorded their tenant.
	accounts Accounts
	// others are the sagas other contexts keep in their own stores
	// (payments' transfers).
	others OtherSagas
}

// OtherSagas reads and retries the sagas another context keeps in its
// own store (payments' transfers), through its published calls.
type OtherSagas interface {
	// Get returns saga id, or saga.ErrNotFound.
	Get(ctx context.Context, id string) (saga.Instance, error)
	// Retry resumes Failed saga id, recording meta (saga.ErrNotFound,
	// saga.ErrNotFailed).
	Retry(ctx context.Context, meta eventstore.Metadata, id string) error
}

// NewSagas returns the sagas on engine.
func NewSagas(engine *saga.Engine, orders *Service, accounts Accounts, others OtherSagas) *Sagas {
	return &Sagas{engine: engine, orders: orders, accounts: accounts, others: others}
}

// get finds saga id in ordering's store, then in the others'; local
// says which.
func (a *Sagas) get(ctx context.Context, id string) (in saga.Instance, local bool, err error) {
	in, err = a.engine.Get(ctx, id)
	if errors.Is(err, saga.ErrNotFound) && a.others != nil {
		in, err = a.others.Get(ctx, id)
		return in, false, err
	}
	return in, true, err
}

// Errors of the sagas.
var (
	ErrSagaNotFound  = &errs.Error{Code: errs.NotFound, Reason: "saga_not_found", Message: "no such saga"}
	ErrSagaNotFailed = &errs.Error{Code: errs.Conflict, Reason: "saga_not_failed", Message: "only a Failed saga can be retried"}
)

// Get returns saga id to c, an admin of its tenant; to anyone else it
// does not exist.
func (a *Sagas) Get(ctx context.Context, c Caller, id string) (saga.Instance, error) {
	in, _, err := a.see(ctx, c, id)
	return in, err
}

// see is Get, and whether the saga is ordering's own.
func (a *Sagas) see(ctx context.Context, c Caller, id string) (saga.Instance, bool, error) {
	in, local, err := a.get(ctx, id)
	if errors.Is(err, saga.ErrNotFound) {
		return saga.Instance{}, false, ErrSagaNotFound
	}
	if err != nil {
		return saga.Instance{}, false, err
	}
	tenant, ok, err := a.tenant(ctx, in)
	if err != nil {
		return saga.Instance{}, false, err
	}
	if !ok || !c.CanSee(tenant, "") {
		return saga.Instance{}, false, ErrSagaNotFound
	}
	return in, local, nil
}

// Retry resumes Failed saga id for c (see Get), recording meta, and
// returns it as it stands.
func (a *Sagas) Retry(ctx context.Context, c Caller, meta eventstore.Metadata, id string) (saga.Instance, error) {
	_, local, err := a.see(ctx, c, id)
	if err != nil {
		return saga.Instance{}, err
	}
	if local {
		err = a.engine.Retry(saga.WithMetadata(ctx, meta), id)
	} else {
		err = a.others.Retry(ctx, meta, id)
	}
	if err != nil {
		if errors.Is(err, saga.ErrNotFailed) {
			return saga.Instance{}, ErrSagaNotFailed
		}
		return saga.Instance{}, err
	}
	in, _, err := a.get(ctx, id)
	return in, err
}

// tenant is the tenant saga in belongs to: the one it started in (its
// metadata); for a saga started before sagas recorded it, its order's
// (a checkout) or its paying account's (a transfer).
func (a *Sagas) tenant(ctx context.Context, in saga.Instance) (string, bool, error) {
	if in.Metadata.Tenant != "" {
		return in.Metadata.Tenant, true, nil
	}
	var d struct {
		OrderID string `json:"order_id"`
		From    string `json:"from"`
	}
	if json.Unmarshal(in.Data, &d) != nil {
		return "", false, nil
	}
	switch {
	case d.OrderID != "":
		if o, _, err := a.orders.Get(ctx, d.OrderID); err == nil {
			return o.Tenant, true, nil
		}
	case d.From != "" && a.accounts != nil:
		t, _, err := a.accounts.Owner(ctx, d.From)
		if errs.Transient(err) {
			return "", false, err // payments could not say: retry
		}
		return t, err == nil, nil
	}
	return "", false, nil
}
