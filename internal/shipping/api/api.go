// Package api is the shipping context's HTTP interface: /api/v1/shipments.
package api

import (
	"net/http"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/shipping/app"
)

// Orders tells whose an order is (app.Orders).
type Orders = app.Orders

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
	s, err := h.svc.ShipmentFor(r.Context(), c, h.orders, id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, s)
}
