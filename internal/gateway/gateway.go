// Package gateway is Agora's API gateway: one HTTP handler in front of
// every bounded context's service instances.
//
// A request passes, in order: a recoverer, the request ID, the 1 MiB body
// limit, a check of its target (a path with empty, "." or ".." segments
// is a 404 problem, not ServeMux's redirect; a query that does not parse
// a 400), the route table (an unknown path is a 404 problem), JWT
// authentication and the route's roles, a check against the OpenAPI
// document (when Config.Validate is set), the route's rate limits (per
// client and per tenant), Idempotency-Key handling for POSTs, and then
// the upstream cluster's resilience policies (fallback, bulkhead, retries
// for idempotent requests, circuit breaker, timeout) around a balancer
// that picks one of the cluster's instances from the registry and ejects
// outliers. The building blocks live in the subpackages; this package
// assembles them.
package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/balance"
	"github.com/agora-commerce/agora/internal/gateway/edge"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
	"github.com/agora-commerce/agora/internal/gateway/problem"
	"github.com/agora-commerce/agora/internal/gateway/ratelimit"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/resilience"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/gateway/validate"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// Config assembles a Gateway.
type Config struct {
	// Routes is the route table (default routes.Default()).
	Routes *routes.Table
	// Registry says where each cluster's instances are (required).
	Registry registry.Registry
	// Verifier checks access tokens (required).
	Verifier *auth.Verifier
	// Limiter keeps the rate-limit buckets; nil means no rate limits.
	Limiter ratelimit.Limiter
	// Idempotency keeps Idempotency-Key answers (default: in process).
	Idempotency idempotency.Store
	// IdempotencyTTL is how long an answer is kept there (default 24h).
	IdempotencyTTL time.Duration
	// Local serves the routes of cluster routes.Local (health, metrics,
	// OpenAPI, ...) and any path the table does not know (nil: 404).
	Local http.Handler
	// Resilience tunes every cluster's policies; the route table's
	// per-cluster settings override it.
	Resilience resilience.Config
	// Balance tunes every cluster's balancer (outlier ejection).
	Balance balance.Config
	// Transport carries attempts to instances (default: a transport
	// keeping many idle connections per instance).
	Transport http.RoundTripper
	// TLS configures the default Transport's connections to instances
	// with https URLs, e.g. to trust a private CA (nil: the system's
	// roots).
	TLS *tls.Config
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger
	// OnBreaker, if set, is called on every breaker transition.
	OnBreaker func(cluster string, from, to resilience.State)
	// RateLimited, if set, is asked once per rate-limited route for the
	// function told of each of its refusals (429), given the limit that
	// refused ("client" or "tenant"): for metrics.
	RateLimited func(class string) func(limit string)
	// Validate checks every routed request (proxied, or served by Local)
	// against the OpenAPI document (package validate) once it is
	// authenticated, before rate limits, Idempotency-Key handling and the
	// upstream: a request the document rejects is refused with the
	// status and problem its service would have answered, and never
	// reaches it.
	Validate bool
}

// Gateway is the assembled gateway; it is an http.Handler.
type Gateway struct {
	cfg      Config
	validate *validate.Validator // nil: no validation
	handler  http.Handler
	clusters map[string]*resilience.Cluster
	// balancers are the clusters' balancers, by cluster.
	balancers map[string]*balance.Balancer
}

// New assembles a gateway from cfg.
func New(cfg Config) (*Gateway, error) {
	if cfg.Registry == nil || cfg.Verifier == nil {
		return nil, fmt.Errorf("gateway: a registry and a verifier are required")
	}
	if cfg.Routes == nil {
		cfg.Routes = routes.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Idempotency == nil {
		cfg.Idempotency = idempotency.NewMemoryStore(nil)
	}
	if cfg.Transport == nil {
		cfg.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSClientConfig:     cfg.TLS,
			TLSHandshakeTimeout: 10 * time.Second,
		}
	}
	g := &Gateway{cfg: cfg, clusters: map[string]*resilience.Cluster{}, balancers: map[string]*balance.Balancer{}}
	if cfg.Validate {
		v, err := validate.Default()
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.validate = v
	}
	for name, c := range cfg.Routes.Clusters {
		rc := cfg.Resilience
		rc.Logger, rc.OnStateChange = cfg.Logger, cfg.OnBreaker
		if c.MaxConcurrent > 0 {
			rc.MaxConcurrent = c.MaxConcurrent
		}
		if c.AttemptTimeout > 0 {
			rc.AttemptTimeout = c.AttemptTimeout
		}
		if c.MaxRetries != nil {
			rc.MaxRetries = *c.MaxRetries
			if rc.MaxRetries == 0 {
				rc.MaxRetries = -1 // the table's 0 is "none"; resilience's is "default"
			}
		}
		bc := cfg.Balance
		bc.Logger = cfg.Logger
		b := balance.New(cfg.Registry, name, bc)
		cl := resilience.New(name, b.Transport(cfg.Transport), rc)
		g.clusters[name] = cl
		g.balancers[name] = b
	}
	mux := http.NewServeMux()
	cfg.Routes.Register(mux, func(rt *routes.Route) http.Handler { return routed(rt, g.route(rt)) })
	local := cfg.Local
	if local == nil {
		local = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "no_route", Message: "no such path"})
		})
	}
	mux.Handle("/", g.methodNotAllowed(local))
	g.handler = httpapi.Recoverer(cfg.Logger, httpapi.RequestID(edge.BodyLimit(httpapi.MaxBodyBytes, canonical(mux))))
	return g, nil
}

// canonical refuses a request whose target is not in canonical form
// before anything routes it: a path with empty, "." or ".." segments
// (which http.ServeMux would answer with a redirect to the cleaned path,
// as text/html, for any method) is a 404 problem, like any path the
// table does not know, and a query that does not parse (a bad escape, a
// semicolon; the services would silently drop the pair) a 400.
func canonical(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p != cleanPath(p) {
			httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "no_route", Message: "no such path (not in canonical form)"})
			return
		}
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			httpapi.Error(w, r, &errs.Error{Code: errs.Invalid, Reason: "malformed_query", Message: "the query string does not parse: " + err.Error()})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is p as http.ServeMux cleans it: rooted, without empty, "."
// or ".." segments, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// methodNotAllowed answers 405 with Allow for a path the table routes
// for other methods only; any other request goes to next.
func (g *Gateway) methodNotAllowed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if m == r.Method {
				continue
			}
			probe := r.Clone(r.Context())
			probe.Method = m
			if rt, ok := g.cfg.Routes.Match(probe); ok && rt.Cluster != routes.Local {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		httpapi.Error(w, r, &errs.Error{Code: errs.MethodNotAllowed, Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
	})
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Breakers returns each cluster's breaker state, for metrics.
func (g *Gateway) Breakers() map[string]resilience.State {
	out := make(map[string]resilience.State, len(g.clusters))
	for name, c := range g.clusters {
		out[name] = c.State()
	}
	return out
}

// Upstream is one cluster the gateway routes to: its resilience policies
// (breaker, bulkhead) and its balancer (outlier ejection).
type Upstream struct {
	// Name is the cluster's name in the route table.
	Name string
	// Cluster is its resilience policies.
	Cluster *resilience.Cluster
	// Balancer picks its instances.
	Balancer *balance.Balancer
}

// Upstreams returns every upstream cluster, sorted by name, for operators.
func (g *Gateway) Upstreams() []Upstream {
	out := make([]Upstream, 0, len(g.clusters))
	for name, c := range g.clusters {
		out = append(out, Upstream{Name: name, Cluster: c, Balancer: g.balancers[name]})
	}
	slices.SortFunc(out, func(a, b Upstream) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// route builds the handler chain of one route.
func (g *Gateway) route(rt *routes.Route) http.Handler {
	if rt.Cluster == routes.Local {
		if g.cfg.Local == nil {
			return http.NotFoundHandler()
		}
		h := g.limited(rt, g.cfg.Local)
		if g.validate != nil {
			// The gateway's own operations (traces, the log, rebuilds, ...)
			// are held to the document like the services'.
			h = g.validate.Handler(rt.Pattern, h)
		}
		return routes.Authorize(g.cfg.Verifier, rt, h)
	}
	var h http.Handler = g.proxy(rt)
	if rt.Timeout == 0 {
		h = unbounded(h)
	}
	if rt.Check == routes.CheckOrder {
		h = g.orderCheck(h)
	}
	if rt.Method == http.MethodPost {
		h = idempotency.Middleware(idempotency.Options{Store: g.cfg.Idempotency, TTL: g.cfg.IdempotencyTTL, Scope: scope, Logger: g.cfg.Logger})(h)
	}
	h = g.limited(rt, h)
	if g.validate != nil {
		h = g.validate.Handler(rt.Pattern, h)
	}
	return routes.Authorize(g.cfg.Verifier, rt, traced(rt, h))
}

// limited applies rt's rate-limit class in front of h (none without a
// limiter or for a class without limits).
func (g *Gateway) limited(rt *routes.Route, h http.Handler) http.Handler {
	if g.cfg.Limiter == nil {
		return h
	}
	class, ok := g.cfg.Routes.RateLimits[rt.RateLimit]
	if !ok || (class.Client.Rate <= 0 && class.Tenant.Rate <= 0) {
		return h
	}
	p := ratelimit.Policy{Name: class.Name,
		Client: ratelimit.Limit{Rate: class.Client.Rate, Period: class.Client.Period, Burst: class.Client.Burst},
		Tenant: ratelimit.Limit{Rate: class.Tenant.Rate, Period: class.Tenant.Period, Burst: class.Tenant.Burst}}
	var refused func(limit string)
	if g.cfg.RateLimited != nil {
		refused = g.cfg.RateLimited(class.Name)
	}
	return ratelimit.Middleware(ratelimit.Options{Limiter: g.cfg.Limiter, Logger: g.cfg.Logger, Identify: identify,
		Policy: func(*http.Request) (ratelimit.Policy, bool) { return p, true }, OnRefused: refused})(h)
}

// unbounded lifts the server's write timeout for a route without a
// timeout (a stream of server-sent events): the stream lasts as long as
// the client stays.
func unbounded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		next.ServeHTTP(w, r)
	})
}

// routeSetter is what a response writer around the gateway implements to
// learn a request's route (telemetry.RouteSetter: the HTTP metrics').
type routeSetter interface {
	SetRoute(route, service string)
}

// routed names rt (its pattern, and its cluster as the service) to the
// first writer around the gateway that wants to know, unwrapping the
// writers in between: the request the ServeMux matched is a copy, so its
// pattern never reaches the handlers outside the gateway.
func routed(rt *routes.Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for u := w; u != nil; {
			if s, ok := u.(routeSetter); ok {
				s.SetRoute(rt.Pattern, rt.Cluster)
				break
			}
			uw, ok := u.(interface{ Unwrap() http.ResponseWriter })
			if !ok {
				break
			}
			u = uw.Unwrap()
		}
		next.ServeHTTP(w, r)
	})
}

// traced marks the request's span as the gateway's, routing to rt's
// cluster.
func traced(rt *routes.Route, next http.Handler) http.Handler {
	attrs := []attribute.KeyValue{tracing.ServiceKey.String("gateway"), attribute.String("agora.cluster", rt.Cluster)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetAttributes(attrs...)
		next.ServeHTTP(w, r)
	})
}

// identify counts a request against its user and tenant, or its client
// IP when anonymous.
func identify(r *http.Request) ratelimit.Identity {
	if c, ok := auth.ClaimsFrom(r.Context()); ok {
		return ratelimit.Identity{Client: "user:" + c.Subject, Tenant: c.Tenant}
	}
	return ratelimit.IdentifyByIP(r)
}

// scope is whose Idempotency-Key a request's is.
func scope(r *http.Request) string {
	if c, ok := auth.ClaimsFrom(r.Context()); ok {
		return c.Tenant + "/" + c.Subject
	}
	return "ip:" + edge.ClientIP(r)
}

// proxy is the route's reverse proxy to its cluster, through the
// cluster's policies with the route's options (its timeout, its answer to
// whether a request may be retried).
func (g *Gateway) proxy(rt *routes.Route) http.Handler {
	cluster := rt.Cluster
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			forwardedFor(pr)
			// The balancer sets the instance; this placeholder keeps
			// ReverseProxy's URL checks happy.
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", cluster
		},
		Transport:      g.clusters[cluster].Route(resilience.RouteOptions{Idempotent: rt.Idempotent, Timeout: rt.Timeout}),
		BufferPool:     buffers,
		ModifyResponse: dropUpstreamRequestID,
		ErrorHandler:   g.proxyError,
		// Server-sent events are flushed as they come (ReverseProxy
		// sees text/event-stream); other answers are written whole.
	}
}

// proxyError answers a failed round trip: the resilience policies' own
// errors (503 upstream unavailable, 504 attempt or route timeout) as
// they are, anything else as 502.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var e *errs.Error
	if errors.As(err, &e) {
		httpapi.Error(w, r, e)
		return
	}
	if r.Context().Err() != nil {
		return // the client went away: no one is left to answer
	}
	g.cfg.Logger.Warn("gateway: upstream failed", "path", r.URL.Path, "err", err)
	problem.Write(w, r, http.StatusBadGateway, "bad_gateway", "the upstream failed")
}

// buffers reuses the proxies' copy buffers (ReverseProxy would allocate
// 32 KiB per response). They are pooled as array pointers, which a slice
// converts to and from without allocating.
var buffers = &bufferPool{sync.Pool{New: func() any { return new([bufferSize]byte) }}}

const bufferSize = 32 << 10

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte { return b.p.Get().(*[bufferSize]byte)[:] }

func (b *bufferPool) Put(p []byte) {
	if len(p) == bufferSize {
		b.p.Put((*[bufferSize]byte)(p))
	}
}

// forwardedFor sets X-Forwarded-For to the caller's address, as
// ProxyRequest.SetXForwarded does, without X-Forwarded-Host and -Proto:
// no service builds absolute URLs, and every header forwarded is one more
// for the service to read on every request (identity's audit log reads
// X-Forwarded-For).
func forwardedFor(pr *httputil.ProxyRequest) {
	ip, _, err := net.SplitHostPort(pr.In.RemoteAddr)
	if err != nil {
		return
	}
	if prior := pr.Out.Header["X-Forwarded-For"]; len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	pr.Out.Header["X-Forwarded-For"] = []string{ip}
}

// dropUpstreamRequestID keeps the gateway's X-Request-Id and
// Agora-Trace-Id (the upstream's names the same trace) the only ones.
func dropUpstreamRequestID(res *http.Response) error {
	// Both names are canonical: Header.Del would only canonicalize them
	// again.
	delete(res.Header, httpapi.RequestIDHeader)
	delete(res.Header, httpapi.TraceIDHeader)
	return nil
}
