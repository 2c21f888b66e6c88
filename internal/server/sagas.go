package server

import (
	"encoding/json"
	"errors"
	"net/http"

	ordapi "github.com/agora-commerce/agora/internal/ordering/api"
	ordapp "github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/ordering/checkout"
	payapp "github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/platform/auth"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/saga"
)

// sagasAPI serves GET /api/v1/sagas/{id} and POST /api/v1/sagas/{id}/retry
// to admins of the tenant whose order or transfer the saga runs.
type sagasAPI struct {
	engine *saga.Engine
	orders *ordapp.Service
	// accounts says whose an account is (payments; over the bus when
	// distributed).
	accounts ordapi.Accounts
}

// visible loads saga id for the caller: an admin of the tenant of the
// order (checkout) or of the paying account (transfer) it runs.
func (a sagasAPI) visible(r *http.Request, id string) (saga.Instance, error) {
	c, err := auth.Caller(r)
	if err != nil {
		return saga.Instance{}, err
	}
	in, err := a.engine.Get(r.Context(), id)
	if err != nil {
		return saga.Instance{}, sagaError(err)
	}
	tenant, ok := "", false
	switch in.Type {
	case checkout.SagaType:
		var d checkout.Data
		if json.Unmarshal(in.Data, &d) == nil {
			if o, _, err := a.orders.Get(r.Context(), d.OrderID); err == nil {
				tenant, ok = o.Tenant, true
			}
		}
	case payapp.TransferSagaType:
		var d payapp.TransferData
		if json.Unmarshal(in.Data, &d) == nil {
			t, _, err := a.accounts.Owner(r.Context(), d.From)
			if errs.Transient(err) {
				return saga.Instance{}, err // payments could not say: retry
			}
			tenant, ok = t, err == nil
		}
	}
	if !ok || !c.CanSee(tenant, "") {
		return saga.Instance{}, sagaError(saga.ErrNotFound)
	}
	return in, nil
}

func (a sagasAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/sagas/{id}", a.get)
	mux.HandleFunc("POST /api/v1/sagas/{id}/retry", a.retry)
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

func (a sagasAPI) get(w http.ResponseWriter, r *http.Request) {
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

func (a sagasAPI) retry(w http.ResponseWriter, r *http.Request) {
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
