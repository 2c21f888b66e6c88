package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/saga"
)

// Sagas serves GET /api/v1/sagas/{id} and POST /api/v1/sagas/{id}/retry
// (the route table lets admins only) to admins of the tenant whose saga
// it is: checkouts and transfers alike.
type Sagas struct {
	engine *saga.Engine
	orders *app.Service
	// accounts says whose an account is (payments; over the bus when
	// distributed), for transfers that started without a tenant.
	accounts Accounts
}

// NewSagas returns the sagas API on engine.
func NewSagas(engine *saga.Engine, orders *app.Service, accounts Accounts) *Sagas {
	return &Sagas{engine: engine, orders: orders, accounts: accounts}
}

// Register adds the sagas routes to mux.
func (a *Sagas) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/sagas/{id}", a.get)
	mux.HandleFunc("POST /api/v1/sagas/{id}/retry", a.retry)
}

// tenant is the tenant saga in belongs to: the one it started in (its
// metadata); for a saga started before sagas recorded it, its order's or
// its paying account's.
func (a *Sagas) tenant(r *http.Request, in saga.Instance) (string, bool, error) {
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
	switch in.Type {
	case checkout.SagaType:
		if o, _, err := a.orders.Get(r.Context(), d.OrderID); err == nil {
			return o.Tenant, true, nil
		}
	case paymentsapi.TransferSagaType:
		t, _, err := a.accounts.Owner(r.Context(), d.From)
		if errs.Transient(err) {
			return "", false, err // payments could not say: retry
		}
		return t, err == nil, nil
	}
	return "", false, nil
}

// visible loads saga id for the caller, an admin of its tenant; to anyone
// else it does not exist.
func (a *Sagas) visible(r *http.Request, id string) (saga.Instance, error) {
	c, err := auth.Caller(r)
	if err != nil {
		return saga.Instance{}, err
	}
	in, err := a.engine.Get(r.Context(), id)
	if err != nil {
		return saga.Instance{}, sagaError(err)
	}
	tenant, ok, err := a.tenant(r, in)
	if err != nil {
		return saga.Instance{}, err
	}
	if !ok || !c.CanSee(tenant, "") {
		return saga.Instance{}, sagaError(saga.ErrNotFound)
	}
	return in, nil
}

func sagaError(err error) error {
	switch {
	case errors.Is(err, saga.ErrNotFound):
		return &errs.Error{Code: errs.NotFound, Reason: "saga_not_found", Message: "no such saga", Err: err}
	case errors.Is(err, saga.ErrNotFailed):
		return &errs.Error{Code: errs.Conflict, Reason: "saga_not_failed", Message: "only a Failed saga can be retried", Err: err}
	}
	return err
}

func (a *Sagas) get(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	in, err := a.visible(r, id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, in)
}

func (a *Sagas) retry(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := httpapi.EmptyBody(w, r); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if _, err := a.visible(r, id); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := a.engine.Retry(saga.WithMetadata(r.Context(), auth.Metadata(r)), id); err != nil {
		httpapi.Error(w, r, sagaError(err))
		return
	}
	in, err := a.engine.Get(r.Context(), id)
	if err != nil {
		httpapi.Error(w, r, sagaError(err))
		return
	}
	httpapi.JSON(w, http.StatusAccepted, in)
}
