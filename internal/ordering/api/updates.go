package api

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// updates serves GET /api/v1/orders/{id}/updates: the order, to its owner
// or an admin, as Server-Sent Events — an `order` event with the order
// (as GET /api/v1/orders/{id} shows it) at once and again whenever it
// changes, until it is Confirmed or Cancelled, after which the stream
// ends (httpapi.Follow).
func (h *Handler) updates(w http.ResponseWriter, r *http.Request) {
	id, c, ok := auth.IDAndCaller(w, r, "id")
	if !ok {
		return
	}
	httpapi.Follow(w, r, h.log, "order", func(ctx context.Context) (any, bool, error) {
		o, _, err := h.svc.Order(ctx, c, id)
		return View{Order: o, SagaID: h.sagaID(o.ID)}, o.Status != ordering.StatusPending, err
	})
}
