package auth

import (
	"context"
	"net/http"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Caller returns the request's verified claims, or ErrNoToken.
func Caller(r *http.Request) (*Claims, error) {
	if c, ok := ClaimsFrom(r.Context()); ok {
		return c, nil
	}
	return nil, ErrNoToken
}

// DefaultTenant is the tenant of data recorded without one.
const DefaultTenant = "demo"

// ErrNotVisible answers a request for a resource the caller may not see:
// 404, as if it did not exist, so that IDs in other tenants or of other
// customers cannot be probed.
var ErrNotVisible = &errs.Error{Code: errs.NotFound, Reason: "not_found", Message: "no such resource"}

// CanSee reports whether the caller may see a resource of tenant owned
// by owner: it must be in the same tenant, and be the owner or an admin.
// A resource recorded without a tenant belongs to the default tenant.
func (c *Claims) CanSee(tenant, owner string) bool {
	if tenant == "" {
		tenant = DefaultTenant
	}
	if c.Tenant != tenant {
		return false
	}
	return c.Subject == owner || c.HasRole(RoleAdmin)
}

// Metadata is the event metadata of a request: the caller's tenant and
// user (none if anonymous), the request ID as correlation ID, and the
// W3C trace context.
func Metadata(r *http.Request) eventstore.Metadata {
	m := eventstore.Metadata{CorrelationID: r.Header.Get(httpapi.RequestIDHeader), TraceParent: r.Header.Get("Traceparent")}
	if c, ok := ClaimsFrom(r.Context()); ok {
		m.Tenant, m.User = c.Tenant, c.Subject
	}
	return m
}

// Read serves a GET of one resource: the path value param (checked by
// httpapi.PathID) and the verified caller go to get, whose result is the
// 200 JSON answer and whose error is the problem.
func Read[T any](param string, get func(ctx context.Context, c *Claims, id string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, c, ok := IDAndCaller(w, r, param)
		if !ok {
			return
		}
		v, err := get(r.Context(), c, id)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		httpapi.JSON(w, http.StatusOK, v)
	}
}

// Act serves a POST that acts on one resource and takes no body (an empty
// JSON object at most): the path value param, the verified caller and
// the request's event metadata go to act, whose result is the JSON answer
// with status and whose position (if not 0) is its Agora-Position.
func Act[T any](param string, status int, act func(ctx context.Context, c *Claims, meta eventstore.Metadata, id string) (T, uint64, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, c, ok := IDAndCaller(w, r, param)
		if !ok {
			return
		}
		if err := httpapi.EmptyBody(w, r); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		v, pos, err := act(r.Context(), c, Metadata(r), id)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		if pos > 0 {
			httpapi.SetPosition(w, r, pos)
		}
		httpapi.JSON(w, status, v)
	}
}

// IDAndCaller reads the path value param and the verified caller, or
// answers the problem and reports false.
func IDAndCaller(w http.ResponseWriter, r *http.Request, param string) (string, *Claims, bool) {
	id, err := httpapi.PathID(r, param)
	if err == nil {
		var c *Claims
		if c, err = Caller(r); err == nil {
			return id, c, true
		}
	}
	httpapi.Error(w, r, err)
	return "", nil, false
}
