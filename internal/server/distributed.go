package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/traces"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tracing"
)

// Gateway is the name Config.Only takes for a process that runs the
// gateway alone.
const Gateway = "gateway"

// Contexts are the names Config.Only takes: the gateway and every module.
var Contexts = func() []string {
	out := []string{Gateway}
	for _, d := range Modules {
		out = append(out, d.Name)
	}
	return out
}()

// registryTTL is how long an instance stays registered without a
// heartbeat.
const registryTTL = 6 * time.Second

func checkDistributed(cfg Config) error {
	if !slices.Contains(Contexts, cfg.Only) {
		return fmt.Errorf("server: --only %q: want one of %s", cfg.Only, strings.Join(Contexts, ", "))
	}
	if cfg.PostgresURL == "" || cfg.NATSURL == "" {
		return fmt.Errorf("server: --only needs PostgreSQL (AGORA_POSTGRES_URL) and an external NATS server (AGORA_NATS_URL)")
	}
	return nil
}

// openDistributed sets the server up as one process of a distributed
// platform (Config.Only): the registry in NATS KV, and on Addr either the
// gateway (reading the registry) or one module — built alone, its API
// beside the operational endpoints, registered there. What the module
// asks of other contexts crosses the bus (package call), answered by
// their processes; what it is asked, it answers on the bus.
func (s *Server) openDistributed(ctx context.Context) error {
	cfg := s.cfg
	kv, err := registry.OpenKV(s.bg, s.bus.JetStream(), strings.ReplaceAll(s.cfg.NATSNamespace, ".", "_")+"_registry", registryTTL, s.log)
	if err != nil {
		return err
	}
	s.reg = kv
	var def module.Def
	for _, d := range Modules {
		if d.Name == cfg.Only {
			def = d
		}
	}
	var defs []module.Def
	if def.New != nil {
		defs = append(defs, def)
	}
	if err := s.build(ctx, defs); err != nil {
		return err
	}
	if err := s.listen(); err != nil {
		return err
	}
	// Every process answers the gateway's trace queries from its store.
	s.daemons = append(s.daemons, func(ctx context.Context) error {
		return s.bus.Respond(ctx, traces.Subject, "", traces.Respond(s.processName(), tracing.Recent()))
	})
	if cfg.Only == Gateway {
		if err := s.buildGateway(); err != nil {
			return err
		}
		s.http = newHTTPServer(httpapi.AccessLog(s.log, s.metrics.HTTP(s.gateway)), s.log) // the gateway gives IDs and recovers
		return nil
	}
	// The module's API, and the operational endpoints beside it.
	svc := newService(s.mods[0])
	s.services = append(s.services, svc)
	top := http.NewServeMux()
	ops := s.ops()
	for _, p := range []string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json"} {
		top.Handle(p, ops)
	}
	var api http.Handler = svc.faulty(s.guard(svc))
	s.http = newHTTPServer(httpapi.Middleware(s.log, s.metrics.HTTP(top)), s.log)
	url := cfg.AdvertiseURL
	if url == "" {
		url = s.URL()
	}
	for _, c := range s.stores {
		if c.parts == nil {
			continue
		}
		m := s.mods[0]
		l := &leases{c: c, cluster: c.name, instance: s.instanceID(), reg: kv, kv: kv, url: url, log: s.log,
			work: func(ctx context.Context, part *contextStore) {
				var fs []func(context.Context) error
				for _, r := range part.runners {
					fs = append(fs, r.Run)
				}
				for _, r := range part.relays {
					fs = append(fs, r.Run)
				}
				// The calls about this partition, sent here by the others.
				for _, a := range m.Answers {
					fs = append(fs, func(ctx context.Context) error {
						return s.bus.Respond(ctx, partitionSubject(a.Subject, part.name), "", a.Respond)
					})
				}
				runAll(ctx, s.log, "partition "+part.name, fs...)
			}}
		s.leases = append(s.leases, l)
		api = s.toOwner(l, api)
		for _, a := range m.Answers {
			routed := s.routeCall(l, a, m.PartitionKey)
			s.daemons = append(s.daemons, func(ctx context.Context) error { return s.bus.Respond(ctx, a.Subject, a.Owner, routed) })
		}
	}
	top.Handle("/", api)
	// Run registers the instance once it serves.
	s.register = func() error {
		stop, err := kv.Register(s.bg, cfg.Only, registry.Instance{ID: s.instanceID(), URL: url, Weight: 1})
		if err != nil {
			return err
		}
		s.deregister = stop
		return nil
	}
	return nil
}

// instanceID is the ID this process registers with (distributed mode):
// its host, process ID and bound address.
func (s *Server) instanceID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strings.NewReplacer(":", "-", ".", "-").Replace(s.ln.Addr().String()))
}

// processName names this process to the gateway's trace queries: its
// context and instance ID.
func (s *Server) processName() string { return s.cfg.Only + "/" + s.instanceID() }

// processes names every process expected to answer a trace query: this
// one, and every instance registered.
func (s *Server) processes() []string {
	out := []string{s.processName()}
	for _, c := range Contexts {
		if c == Gateway {
			continue
		}
		for _, in := range s.reg.Instances(c) {
			if name := c + "/" + in.ID; name != out[0] {
				out = append(out, name)
			}
		}
	}
	return out
}

// traceSource is where the ops endpoints find traces: this process's
// store (embedded mode), or every process's, gathered over the bus.
func (s *Server) traceSource() traces.Source {
	if s.cfg.Only == "" {
		return traces.Local(tracing.Recent())
	}
	return &traces.Gatherer{Bus: s.bus, Processes: s.processes, Logger: s.log}
}
