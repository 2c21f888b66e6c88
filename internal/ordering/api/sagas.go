package api

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/saga"
)

// Sagas serves GET /api/v1/sagas/{id} and POST /api/v1/sagas/{id}/retry
// (the route table lets admins only; app.Sagas, admins of the saga's
// tenant).
type Sagas struct{ sagas *app.Sagas }

// NewSagas returns the sagas API.
func NewSagas(sagas *app.Sagas) *Sagas { return &Sagas{sagas: sagas} }

// Register adds the sagas routes to mux.
func (a *Sagas) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/sagas/{id}", auth.Read("id", func(ctx context.Context, c *auth.Claims, id string) (saga.Instance, error) {
		return a.sagas.Get(ctx, c, id)
	}))
	mux.HandleFunc("POST /api/v1/sagas/{id}/retry", a.retry)
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
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	in, err := a.sagas.Retry(r.Context(), c, auth.Metadata(r), id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusAccepted, in)
}
