package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Contexts are the names Config.Only takes: the bounded contexts, the BFF
// and the gateway.
var Contexts = []string{"gateway", clusterIdentity, clusterCatalog, clusterInventory, clusterOrdering, clusterPayments, clusterShipping, clusterBFF}

// registryTTL is how long an instance stays registered without a
// heartbeat.
const registryTTL = 6 * time.Second

// openDistributed sets the server up as one context of a distributed
// platform (Config.Only): the registry in NATS KV, the context's
// application wired as in embedded mode, and on Addr either the gateway
// (reading the registry) or the context's own API, registered there.
//
// Every process builds every context's application services over the
// shared event store, as the embedded process does, but serves only its
// own context's API and runs only its own context's projections,
// consumers, relays and daemons. What a context asks of another — the
// orchestrated checkout's steps, identity opening an account, the owner
// and product lookups — goes over the bus, run by a process of the
// context that owns it (commands.go); the choreographed checkout crosses
// only the bus. Ordering's price reads (the catalog cache) still use the
// catalog's code in process, on the shared database.
func (s *Server) openDistributed(ctx context.Context, ops *http.ServeMux) error {
	cfg := s.cfg
	if !slices.Contains(Contexts, cfg.Only) {
		return fmt.Errorf("server: --only %q: want one of %s", cfg.Only, strings.Join(Contexts, ", "))
	}
	if cfg.PostgresURL == "" || cfg.NATSURL == "" {
		return fmt.Errorf("server: --only needs PostgreSQL (AGORA_POSTGRES_URL) and an external NATS server (AGORA_NATS_URL)")
	}
	bg, cancel := context.WithCancel(context.Background())
	s.bg, s.bgCancel = bg, cancel
	kv, err := registry.OpenKV(bg, s.bus.JetStream(), strings.ReplaceAll(s.cfg.NATSNamespace, ".", "_")+"_registry", registryTTL, s.log)
	if err != nil {
		return err
	}
	s.kv, s.reg = kv, kv
	if err := s.wire(ctx); err != nil {
		return err
	}
	s.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	if cfg.Only == "gateway" {
		gw, err := s.buildGateway(kv, ops)
		if err != nil {
			return err
		}
		s.gateway = gw
		s.metrics.Breakers(s.Breakers)
		s.http = newHTTPServer(httpapi.AccessLog(s.log, s.metrics.HTTP(gw)), s.log) // the gateway gives IDs and recovers
		return nil
	}
	// The context's API, and the operational endpoints beside it.
	var svc *service
	for _, x := range s.services {
		if x.name == cfg.Only {
			svc = x
		}
	}
	if svc == nil {
		return fmt.Errorf("server: no API for %q", cfg.Only)
	}
	top := http.NewServeMux()
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"} {
		top.Handle(p, ops)
	}
	top.Handle("/", svc.faulty(s.guard(svc)))
	s.http = newHTTPServer(httpapi.Middleware(s.log, s.metrics.HTTP(top)), s.log)
	url := cfg.AdvertiseURL
	if url == "" {
		url = "http://" + s.ln.Addr().String()
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.NewReplacer(":", "-", ".", "-").Replace(s.ln.Addr().String()))
	// Run registers the instance once it serves.
	s.register = func() error {
		stop, err := kv.Register(bg, cfg.Only, registry.Instance{ID: id, URL: url, Weight: 1})
		if err != nil {
			return err
		}
		s.deregister = stop
		return nil
	}
	return nil
}
