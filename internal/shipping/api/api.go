// Package api is the shipping context's HTTP interface: /api/v1/shipments.
package api

import (
	"net/http"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/shipping/app"
)

// Handler serves the shipping API.
type Handler struct{ svc *app.Service }

// New returns the shipping API on svc.
func New(svc *app.Service) *Handler { return &Handler{svc: svc} }

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
	s, err := h.svc.Get(r.Context(), id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, s)
}
