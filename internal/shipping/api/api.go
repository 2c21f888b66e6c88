// Package api is the shipping context's HTTP interface: /api/v1/shipments.
package api

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/app"
)

// Orders tells whose an order is: shipping keeps no customers of its
// own, so it asks the ordering context (its open host service).
type Orders interface {
	// Owner returns the order's tenant and customer, or an error that
	// maps to 404 if there is no such order.
	Owner(ctx context.Context, orderID string) (tenant, customer string, err error)
}

// Handler serves the shipping API.
type Handler struct {
	svc    *app.Service
	orders Orders
}

// New returns the shipping API on svc; orders says who may see a shipment.
func New(svc *app.Service, orders Orders) *Handler { return &Handler{svc: svc, orders: orders} }

// Register adds the shipping routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/shipments/{order_id}", h.get)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "order_id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	tenant, customer, err := h.orders.Owner(r.Context(), id)
	if errs.Transient(err) {
		httpapi.Error(w, r, err) // ordering could not say (503 when it did not answer): retry
		return
	}
	if err != nil || !c.CanSee(tenant, customer) {
		httpapi.Error(w, r, shipping.ErrNotFound)
		return
	}
	s, err := h.svc.Get(r.Context(), id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, s)
}
