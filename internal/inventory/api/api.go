// Package api is the inventory context's HTTP interface: /api/v1/inventory.
package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Products says whether a product exists (the catalog, as inventory sees it).
type Products interface {
	Exists(ctx context.Context, id string) (bool, error)
}

// Handler serves the inventory API.
type Handler struct {
	svc      *app.Service
	products Products
	log      httpapi.Log
}

// New returns the inventory API on svc; products (optional) lets a restock
// of an unknown product fail with 404; log lets GET
// /api/v1/inventory/{product_id}/updates follow a product's stock live.
func New(svc *app.Service, products Products, log httpapi.Log) *Handler {
	return &Handler{svc: svc, products: products, log: log}
}

// Register adds the inventory routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/inventory/{product_id}", h.get)
	mux.HandleFunc("GET /api/v1/inventory/{product_id}/updates", h.updates)
	mux.HandleFunc("POST /api/v1/inventory/{product_id}/restock", h.restock)
	mux.HandleFunc("GET "+inventoryapi.LevelsPath, h.levels)
}

func (h *Handler) levels(w http.ResponseWriter, r *http.Request) {
	ids := r.URL.Query()["product_id"]
	if len(ids) == 0 || len(ids) > inventoryapi.MaxLevels || slices.Contains(ids, "") {
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "product_id", Message: "give 1 to 100 product IDs"}))
		return
	}
	lv, err := h.svc.Seen(r.Context(), ids)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, inventoryapi.Levels{Items: lv})
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "product_id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	lvl, _, err := h.svc.Get(r.Context(), id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, lvl)
}

// updates serves GET /api/v1/inventory/{product_id}/updates: the
// product's stock levels as Server-Sent Events — a `stock` event at once
// and again whenever they change, for as long as the client stays
// (httpapi.Follow).
func (h *Handler) updates(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "product_id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.Follow(w, r, h.log, "stock", func(ctx context.Context) (any, bool, error) {
		lvl, _, err := h.svc.Get(ctx, id)
		return lvl, false, err
	})
}

type restockRequest struct {
	Quantity *int64 `json:"quantity"`
}

func (h *Handler) restock(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "product_id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var req restockRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if req.Quantity == nil {
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "quantity", Message: "is required"}))
		return
	}
	if *req.Quantity <= 0 || *req.Quantity > inventory.MaxQuantity {
		httpapi.Error(w, r, inventory.ErrBadQuantity)
		return
	}
	if h.products != nil {
		ok, err := h.products.Exists(r.Context(), id)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		if !ok {
			httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "product_not_found", Message: "no such product"})
			return
		}
	}
	lvl, pos, err := h.svc.Restock(r.Context(), auth.Metadata(r), id, *req.Quantity)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.SetPosition(w, r, pos)
	httpapi.JSON(w, http.StatusOK, lvl)
}
