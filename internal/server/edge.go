package server

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// The clusters of the route table: one per bounded context.
const (
	clusterIdentity  = "identity"
	clusterCatalog   = "catalog"
	clusterInventory = "inventory"
	clusterOrdering  = "ordering"
	clusterPayments  = "payments"
	clusterShipping  = "shipping"
	clusterBFF       = "bff"
)

// service is one bounded context's HTTP API, served on its own loopback
// listener behind the gateway, as it would be in its own process.
type service struct {
	name string
	mux  *http.ServeMux
	ln   net.Listener
	http *http.Server
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

func (svc *service) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if svc.fault.Load() {
			httpapi.Error(w, r, &errs.Error{Code: errs.Unavailable, Reason: "injected_fault", Message: "the service is failing (injected)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mux returns the mux of service name, creating the service.
func (s *Server) mux(name string) *http.ServeMux {
	for _, svc := range s.services {
		if svc.name == name {
			return svc.mux
		}
	}
	svc := &service{name: name, mux: http.NewServeMux()}
	s.services = append(s.services, svc)
	return svc.mux
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

// listenServices binds every service to a loopback port and registers it
// as its cluster's instance.
func (s *Server) listenServices(reg *registry.Static) error {
	for _, svc := range s.services {
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
	var internal []*routes.Route
	if svc.name == clusterInventory {
		// The gateway's order check asks for stock levels, public data.
		internal = append(internal, &routes.Route{Pattern: "GET " + inventoryapi.LevelsPath, Auth: routes.AuthNone})
	}
	return s.routes.Guard(svc.name, s.Verifier, svc.mux, internal...)
}

// buildGateway assembles the gateway in front of the services, with ops
// (health, readiness, metrics) served by the gateway itself.
func (s *Server) buildGateway(reg registry.Registry, ops *http.ServeMux) (*gateway.Gateway, error) {
	cfg := gateway.Config{Routes: s.routes, Registry: reg, Verifier: s.Verifier, Local: httpapi.Problems(ops), Logger: s.log,
		// An instance that fails is ejected after 3 failures in a row,
		// well before its cluster's breaker opens (20 failures of the last
		// 40 attempts): one dead instance of several does not open it.
		Resilience: resilience.Config{Delay: s.cfg.BreakerDelay, FailureThreshold: 20, FailureWindow: 40},
		Balance:    balance.Config{ConsecutiveFailures: 3},
		// Requests the OpenAPI document rejects are refused at the edge.
		Validate: true}
	if s.redis != nil {
		cfg.Idempotency = idempotency.NewRedisStore(s.redis, "agora:idem:")
	}
	if s.cfg.RateLimits {
		if s.redis != nil {
			cfg.Limiter = ratelimit.NewRedis(s.redis, "agora:rl:")
		} else {
			cfg.Limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
		}
	}
	return gateway.New(cfg)
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

// resolve returns the base URL of an instance of cluster, for the
// services that call others (the BFF).
func (s *Server) resolve(cluster string) (string, error) {
	in := s.reg.Instances(cluster)
	if len(in) == 0 {
		return "", fmt.Errorf("server: no instance of %s", cluster)
	}
	return in[rand.IntN(len(in))].URL, nil
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
