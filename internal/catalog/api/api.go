// Package api is the catalog context's HTTP interface: /api/v1/products.
// A write answers the catalog position of its change in Agora-Position
// ("catalog.<n>"); ordering honours it as Agora-Min-Position on
// POST /api/v1/orders (prices as of at least that change).
package api

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/money"
)

// Cache is the read path in front of the store (cache-aside): one
// product by ID, and write-through of the products this API changes.
type Cache interface {
	Get(ctx context.Context, id string) (catalog.Product, error)
	Put(ctx context.Context, p catalog.Product)
}

// Handler serves the catalog API.
type Handler struct {
	store *catalog.Store
	cache Cache
}

// New returns the catalog API on store, reading single products through cache.
func New(store *catalog.Store, cache Cache) *Handler { return &Handler{store: store, cache: cache} }

// Register adds the catalog routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/products", h.list)
	mux.HandleFunc("GET /api/v1/products/{id}", h.get)
	mux.HandleFunc("POST /api/v1/products", h.create)
	mux.HandleFunc("PUT /api/v1/products/{id}", h.update)
}

type createRequest struct {
	ID          string       `json:"id"`
	SKU         *string      `json:"sku"`
	Name        *string      `json:"name"`
	Description string       `json:"description"`
	Price       *money.Money `json:"price"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var bad []errs.FieldError
	for _, f := range []struct {
		name string
		set  bool
	}{{"sku", req.SKU != nil}, {"name", req.Name != nil}, {"price", req.Price != nil}} {
		if !f.set {
			bad = append(bad, errs.FieldError{Field: f.name, Message: "is required"})
		}
	}
	if req.ID != "" {
		if fe := httpapi.NewID("id", req.ID); fe != nil {
			bad = append(bad, *fe)
		}
	}
	if len(bad) > 0 {
		httpapi.Error(w, r, errs.Fields(bad...))
		return
	}
	p, pos, err := h.store.Create(r.Context(), auth.Metadata(r), catalog.Product{ID: req.ID, SKU: *req.SKU, Name: *req.Name, Description: req.Description, Price: *req.Price})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	h.cache.Put(r.Context(), p)
	httpapi.SetPosition(w, r, pos)
	w.Header().Set("Location", "/api/v1/products/"+p.ID)
	httpapi.JSON(w, http.StatusCreated, p)
}

type updateRequest struct {
	Name        *string      `json:"name"`
	Description *string      `json:"description"`
	Price       *money.Money `json:"price"`
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var req updateRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	p, pos, err := h.store.Update(r.Context(), auth.Metadata(r), id, catalog.Update{Name: req.Name, Description: req.Description, Price: req.Price})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	h.cache.Put(r.Context(), p)
	httpapi.SetPosition(w, r, pos)
	httpapi.JSON(w, http.StatusOK, p)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	p, err := h.cache.Get(r.Context(), id)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, p)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	if err := httpapi.Query(r, "limit", "cursor", "q"); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	limit, err := httpapi.Limit(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	q := r.URL.Query().Get("q")
	if len(q) > 100 {
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "q", Message: "is longer than 100 characters"}))
		return
	}
	page, err := h.store.List(r.Context(), q, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, page)
}
