// Package api is the shipping context's HTTP interface: /api/v1/shipments.
package api

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/shipping"
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
	mux.HandleFunc("GET /api/v1/shipments/{order_id}", auth.Read("order_id", func(ctx context.Context, c *auth.Claims, id string) (shipping.Shipment, error) {
		return h.svc.ShipmentFor(ctx, c, h.orders, id)
	}))
}
