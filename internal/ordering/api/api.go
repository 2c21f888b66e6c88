// Package api is the ordering context's HTTP interface: /api/v1/orders.
package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
	"go.opentelemetry.io/otel/trace"
)

// Handler serves the ordering API. Each handler decodes, calls one
// application method with its caller, and encodes; who may order for
// whom and see what is the application's rule.
type Handler struct {
	svc     *app.Service
	queries *app.OrderQueries
	rm      httpapi.Waiter
	prices  httpapi.Waiter
	sagaID  func(orderID string) string
	log     httpapi.Log
}

// New returns the ordering API; log lets GET /api/v1/orders/{id}/updates
// follow an order live, and prices is ordering's model of the catalog's
// prices, which POST /api/v1/orders waits on for an Agora-Min-Position
// of the catalog's ("catalog.<n>").
func New(svc *app.Service, q *app.OrderQueries, rm, prices httpapi.Waiter, sagaID func(string) string, log httpapi.Log) *Handler {
	return &Handler{svc: svc, queries: q, rm: rm, prices: prices, sagaID: sagaID, log: log}
}

// CatalogLog is the catalog's log, as its Agora-Position tokens name it.
const CatalogLog = "catalog"

// Register adds the ordering routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/orders", h.place)
	mux.HandleFunc("GET /api/v1/orders", h.list)
	mux.HandleFunc("GET /api/v1/orders/{id}", auth.Read("id", func(ctx context.Context, c *auth.Claims, id string) (View, error) {
		o, _, err := h.svc.Order(ctx, c, id)
		return View{Order: o, SagaID: h.sagaID(o.ID)}, err
	}))
	mux.HandleFunc("GET /api/v1/orders/{id}/updates", h.updates)
	mux.HandleFunc("POST /api/v1/orders/{id}/cancel", auth.Act("id", http.StatusAccepted,
		func(ctx context.Context, c *auth.Claims, meta eventstore.Metadata, id string) (View, uint64, error) {
			o, pos, err := h.svc.CancelFor(ctx, c, meta, id)
			return View{Order: o, SagaID: h.sagaID(o.ID)}, pos, err
		}))
}

type placeRequest struct {
	ID               string            `json:"id"`
	CustomerID       string            `json:"customer_id"`
	Items            []app.Line        `json:"items"`
	ShippingAddress  *ordering.Address `json:"shipping_address"`
	PaymentAccountID string            `json:"payment_account_id"`
	PromotionCode    string            `json:"promotion_code"`
}

// View is an order as the API shows it.
type View struct {
	ordering.Order
	SagaID string `json:"saga_id,omitempty"`
}

func meta(r *http.Request) eventstore.Metadata { return auth.Metadata(r) }

func (h *Handler) place(w http.ResponseWriter, r *http.Request) {
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var req placeRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var bad []errs.FieldError
	noAddress := req.ShippingAddress == nil
	if noAddress {
		bad = append(bad, errs.FieldError{Field: "shipping_address", Message: "is required"})
		req.ShippingAddress = &ordering.Address{}
	}
	if fe := httpapi.ID("payment_account_id", req.PaymentAccountID); fe != nil && req.PaymentAccountID != "" {
		bad = append(bad, *fe)
	}
	for _, f := range []struct{ name, v string }{{"id", req.ID}, {"customer_id", req.CustomerID}, {"promotion_code", req.PromotionCode}} {
		if f.v == "" {
			continue
		}
		check := httpapi.ID
		if f.name == "id" {
			check = httpapi.NewID // a new order's: it goes into paths
		}
		if fe := check(f.name, f.v); fe != nil {
			bad = append(bad, *fe)
		}
	}
	for i, it := range req.Items {
		if fe := httpapi.ID("items["+strconv.Itoa(i)+"].product_id", it.ProductID); fe != nil && it.ProductID != "" {
			bad = append(bad, *fe)
		}
	}
	cmd := app.PlaceOrder{ID: req.ID, CustomerID: req.CustomerID, Lines: req.Items,
		ShippingAddress: *req.ShippingAddress, PaymentAccountID: req.PaymentAccountID, PromotionCode: req.PromotionCode}
	// The domain's rules too, so that one answer lists every bad field.
	if e, ok := errors.AsType[*errs.Error](cmd.Validate()); ok {
		for _, f := range e.Fields {
			if !noAddress || !strings.HasPrefix(f.Field, "shipping_address.") {
				bad = append(bad, f)
			}
		}
	}
	if len(bad) > 0 {
		httpapi.Error(w, r, errs.Fields(bad...))
		return
	}
	// Prices as of at least the catalog write the client names (its
	// Agora-Position), or the model's current ones without one.
	if err := httpapi.ConsistentOf(r, CatalogLog, h.prices); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	o, pos, err := h.svc.PlaceFor(r.Context(), c, meta(r), cmd)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	trace.SpanFromContext(r.Context()).SetAttributes(tracing.OrderKey.String(o.ID))
	httpapi.SetPosition(w, r, pos)
	w.Header().Set("Location", "/api/v1/orders/"+o.ID)
	httpapi.JSON(w, http.StatusAccepted, View{Order: o, SagaID: h.sagaID(o.ID)})
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := httpapi.Query(r, "status", "customer_id", "limit", "cursor", "order"); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	limit, err := httpapi.Limit(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := app.Filter{Tenant: c.Tenant, Limit: limit, Cursor: q.Get("cursor"), CustomerID: q.Get("customer_id")}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "order", Message: `must be "oldest" or "newest"`}))
		return
	}
	switch st := ordering.Status(q.Get("status")); st {
	case "", ordering.StatusPending, ordering.StatusConfirmed, ordering.StatusCancelled:
		f.Status = st
	default:
		httpapi.Error(w, r, errs.Fields(errs.FieldError{Field: "status", Message: `must be "Pending", "Confirmed" or "Cancelled"`}))
		return
	}
	if err := httpapi.Consistent(r, h.rm); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	page, err := h.queries.ListFor(r.Context(), c, f)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.JSON(w, http.StatusOK, page)
}
