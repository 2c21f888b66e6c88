package routes

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// Authenticator checks a request's bearer token (*auth.Verifier).
type Authenticator interface {
	Authenticate(r *http.Request) (*auth.Claims, error)
}

// ErrForbidden answers a caller whose roles the route does not allow.
var ErrForbidden = &errs.Error{Code: errs.Forbidden, Reason: "forbidden", Message: "your roles do not allow this"}

// Authorize is the route's access rule in front of next, the one rule the
// gateway and every service apply:
//   - a public route (auth: none) lets everyone in; a valid token there
//     still identifies its caller (its claims go into the context), while
//     a bad one only makes the request anonymous and is dropped, so that a
//     stale token cannot fail a catalog page or a health probe;
//   - any other route needs a valid token (else 401 with a
//     WWW-Authenticate challenge) and, when it names roles, one of them
//     (else 403).
//
// Rules about data — whose account, which tenant, on whose behalf — are
// the application's, not the route's.
//
// It names the request's span after the route.
func Authorize(v Authenticator, rt *Route, next http.Handler) http.Handler {
	route := attribute.String("http.route", rt.Pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		span := trace.SpanFromContext(r.Context())
		span.SetName(rt.Pattern)
		span.SetAttributes(route)
		if rt.Auth == AuthNone {
			if c, err := v.Authenticate(r); err == nil {
				r = r.WithContext(auth.WithClaims(r.Context(), c))
			} else {
				r.Header.Del("Authorization")
			}
			next.ServeHTTP(w, r)
			return
		}
		c, err := v.Authenticate(r)
		if err != nil {
			auth.Challenge(w, r, err)
			return
		}
		if !rt.Permits(c.Roles) {
			httpapi.Error(w, r, ErrForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), c)))
	})
}

// Guard is a service's own gate: each request is matched to its route
// in the table and let through only by that route's rule (Authorize), so
// a service behind the gateway refuses what the gateway refuses when it
// is called directly. Only the routes the table gives cluster, and the
// service's own internal routes (extra: paths the gateway calls itself
// and never routes, such as inventory's stock levels), reach next; any
// other request is answered 404 (or 405) without reaching it.
func (t *Table) Guard(cluster string, v Authenticator, next http.Handler, extra ...*Route) http.Handler {
	service := tracing.ServiceKey.String(cluster)
	inner := next
	next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetAttributes(service)
		inner.ServeHTTP(w, r)
	})
	mux := http.NewServeMux()
	for _, rt := range t.Routes {
		if rt.Cluster == cluster {
			mux.Handle(rt.Pattern, Authorize(v, rt, next))
		}
	}
	for _, rt := range extra {
		mux.Handle(rt.Pattern, Authorize(v, rt, next))
	}
	return httpapi.Problems(mux)
}
