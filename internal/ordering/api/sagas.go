package api

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
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
	mux.HandleFunc("POST /api/v1/sagas/{id}/retry", auth.Act("id", http.StatusAccepted,
		func(ctx context.Context, c *auth.Claims, meta eventstore.Metadata, id string) (saga.Instance, uint64, error) {
			in, err := a.sagas.Retry(ctx, c, meta, id)
			return in, 0, err
		}))
}
