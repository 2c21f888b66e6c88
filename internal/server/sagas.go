package server

import (
	"errors"
	"net/http"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/saga"
)

// sagasAPI serves GET /api/v1/sagas/{id} and POST /api/v1/sagas/{id}/retry.
type sagasAPI struct{ engine *saga.Engine }

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
	in, err := a.engine.Get(r.Context(), id)
	if err != nil {
		httpapi.Error(w, r, sagaError(err))
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
	if err := a.engine.Retry(r.Context(), id); err != nil {
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
