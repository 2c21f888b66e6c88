package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/agora-commerce/agora/internal/gateway"
	"github.com/agora-commerce/agora/internal/gateway/balance"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
	"github.com/agora-commerce/agora/internal/gateway/ratelimit"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/resilience"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	identityapi "github.com/agora-commerce/agora/internal/identity/api"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// service is one bounded context's HTTP API, served on its own loopback
// listener behind the gateway, as it would be in its own process.
type service struct {
	name string
	mux  *http.ServeMux
	// internal are the module's routes the table does not route.
	internal []*routes.Route
	ln       net.Listener
	http     *http.Server
	// fault makes the service answer everything 503 (InjectFault).
	fault atomic.Bool
}

// InjectFault makes context service name (a route-table cluster: catalog,
// ordering, ...) answer every request 503 while on: a failing upstream,
// for tests and drills of the gateway's breakers and the BFF's
// degradation.
func (s *Server) InjectFault(name string, on bool) {
	for _, svc := range s.services {
		if svc.name == name {
			svc.fault.Store(on)
		}
	}
}

// FailCalls makes every cross-context call of subject (e.g.
// "cmd.inventory.release") made by this process fail as unavailable
// while on: a drill of a context that keeps failing, for tests of what
// operators see (a saga whose compensation cannot complete ends Failed,
// and resumes on Retry once the fault is gone).
func (s *Server) FailCalls(subject string, on bool) {
	var err error
	if on {
		err = &errs.Error{Code: errs.Unavailable, Reason: "injected_fault", Message: subject + " is failing (injected)"}
	}
	s.calls.Fail(subject, err)
}

func (svc *service) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if svc.fault.Load() {
			httpapi.Error(w, r, &errs.Error{Code: errs.Unavailable, Reason: "injected_fault", Message: "the service is failing (injected)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newService is module m's API, on a mux of its own.
func newService(m *built) *service {
	svc := &service{name: m.def.Name, mux: http.NewServeMux(), internal: m.Internal}
	if m.Routes != nil {
		m.Routes(svc.mux)
	}
	return svc
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// listenServices gives every module its service, bound to a loopback
// port and registered as its cluster's instance.
func (s *Server) listenServices(reg *registry.Static) error {
	for _, m := range s.mods {
		svc := newService(m)
		s.services = append(s.services, svc)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("server: listen for %s: %w", svc.name, err)
		}
		svc.ln = ln
		// Each service checks the token again (the gateway is not the only
		// way in) and answers unknown paths with problem+json.
		svc.http = newHTTPServer(svc.faulty(httpapi.Middleware(s.log, s.guard(svc))), s.log)
		if err := reg.Register(svc.name, registry.Instance{ID: svc.name + "-0", URL: "http://" + ln.Addr().String(), Weight: 1}); err != nil {
			return err
		}
	}
	return nil
}

// guard is service svc's own gate: the route table's access rules for
// the routes the table gives it (routes.Table.Guard), the same rules the
// gateway applies, so that a service called directly refuses what the
// gateway would.
func (s *Server) guard(svc *service) http.Handler {
	h := s.routes.Guard(svc.name, s.verifier, s.idempotent(svc.name, svc.mux), svc.internal...)
	// Its positions are its own log's (httpapi.PositionToken).
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(httpapi.WithLog(r.Context(), svc.name)))
	})
}

// idempotent gives context name's POSTs their Idempotency-Key handling,
// with the keys kept in the context's own database: the durable copy
// that a retry after a lost answer meets, whichever gateway it comes
// through and whatever became of Redis. Keys are the caller's (tenant and
// subject, or the address the gateway saw for an anonymous caller) within
// the context.
func (s *Server) idempotent(name string, h http.Handler) http.Handler {
	// The claim of a running request is renewed every second or so: a
	// retry after its process died waits seconds, not a minute.
	return idempotency.Middleware(idempotency.Options{Store: s.storeOf(name).keys, TTL: s.cfg.IdempotencyTTL, LockTTL: claimLease, Logger: s.log,
		Scope: func(r *http.Request) string { return name + ":" + principal(r, 1) }})(h)
}

// claimLease is how long an Idempotency-Key claim outlives the last
// renewal of its running request.
const claimLease = 4 * time.Second

// principal names the caller of r for keys and limits: its token's
// tenant and subject, or its address (proxyHops from the end of
// X-Forwarded-For, as identity reads it) when anonymous.
func principal(r *http.Request, proxyHops int) string {
	if c, ok := auth.ClaimsFrom(r.Context()); ok {
		return c.Tenant + "/" + c.Subject
	}
	return "ip:" + identityapi.ClientAddr(r, proxyHops)
}

// buildGateway assembles the gateway in front of the services (in the
// registry), with the operational endpoints served by the gateway itself.
func (s *Server) buildGateway() error {
	cfg := gateway.Config{Routes: s.routes, Registry: s.reg, Verifier: s.verifier, Local: httpapi.Problems(s.ops()), Logger: s.log, TLS: s.clientTLS,
		// An instance that fails is ejected after 3 failures in a row,
		// well before its cluster's breaker opens (20 failures of the last
		// 40 attempts): one dead instance of several does not open it.
		Resilience: resilience.Config{Delay: s.cfg.BreakerDelay, FailureThreshold: 20, FailureWindow: 40},
		Balance:    balance.Config{ConsecutiveFailures: 3},
		// Requests the OpenAPI document rejects are refused at the edge.
		Validate: true}
	cfg.RateLimited = s.metrics.RateLimited
	cfg.IdempotencyTTL = s.cfg.IdempotencyTTL
	if s.redis != nil {
		// A cache in front of the contexts' durable keys (see idempotent).
		cfg.Idempotency = idempotency.NewRedisStore(s.redis, "agora:idem:")
	}
	if s.cfg.RateLimits {
		if s.redis != nil {
			cfg.Limiter = ratelimit.NewRedis(s.redis, "agora:rl:")
		} else {
			cfg.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
		}
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	s.gateway = gw
	s.metrics.Breakers(s.Breakers)
	s.metrics.Bulkheads(s.bulkheads)
	// The console's charts (GET /api/v1/ops/metrics/series) sample the
	// process's metrics.
	s.daemons = append(s.daemons, s.metrics.Sampler().Run)
	return nil
}

// serveServices serves every service until ctx ends.
func (s *Server) serveServices(ctx context.Context) {
	for _, svc := range s.services {
		if svc.http == nil {
			continue // distributed mode: the process serves its one context itself
		}
		s.wg.Go(func() {
			if err := svc.http.Serve(svc.ln); err != nil && err != http.ErrServerClosed {
				s.log.Error("service stopped", "service", svc.name, "err", err)
			}
		})
		s.wg.Go(func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = svc.http.Shutdown(shutdown)
		})
	}
}

// Breakers returns the gateway's circuit breaker state per cluster.
func (s *Server) Breakers() map[string]string {
	out := map[string]string{}
	for name, st := range s.gateway.Breakers() {
		out[name] = st.String()
	}
	return out
}

// ServiceAddr returns the loopback address of a context's service
// (behind the gateway), for tests that call a service directly.
func (s *Server) ServiceAddr(name string) string {
	for _, svc := range s.services {
		if svc.name == name && svc.ln != nil {
			return svc.ln.Addr().String()
		}
	}
	return ""
}
