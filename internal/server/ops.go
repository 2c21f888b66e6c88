package server

import (
	"context"
	"maps"
	"net/http"
	"slices"

	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/ops"
)

// openDeadLetters sets up the table where the bus keeps what consumers
// failed permanently (natsbus.Options.OnDead).
func (s *Server) openDeadLetters(ctx context.Context) error {
	s.dead = ops.NewDeadLetters(s.platformDB)
	return s.dead.Setup(ctx)
}

// operations adds the operations API (package ops) to the gateway's
// local routes. A distributed process holds no event log for it to read
// (the gateway runs no context): those endpoints answer 503 there.
func (s *Server) operations(mux *http.ServeMux) {
	cfg := ops.Config{DeadLetters: s.dead, Registry: s.reg, Mode: ops.Embedded, Context: s.bg, Logger: s.log,
		Upstreams: s.upstreams, Idempotent: s.opsIdempotency()}
	if s.cfg.Only != "" {
		cfg.Mode = ops.Distributed
		cfg.Services = slices.Sorted(maps.Keys(s.routes.Clusters))
		ops.New(cfg).Register(mux)
		return
	}
	for _, c := range s.logs() {
		cfg.Logs = append(cfg.Logs, ops.Log{Context: c.name, Store: c.store})
		if len(c.engine.Types()) > 0 {
			cfg.SagaDBs = append(cfg.SagaDBs, c.db)
			// Every saga-running context has an index of its own: named
			// after the context.
			cfg.Projections = append(cfg.Projections, named{c.name + "." + c.engine.Index().Name(), c.engine.Index()})
		}
	}
	cfg.Audit = func(ctx context.Context, tenant string) (audit.Report, error) {
		return s.Audit(ctx, audit.Options{Tenant: tenant})
	}
	for _, m := range s.mods {
		cfg.Services = append(cfg.Services, m.def.Name)
	}
	for _, r := range s.runners {
		cfg.Projections = append(cfg.Projections, r)
	}
	for _, r := range s.relays {
		cfg.Relays = append(cfg.Relays, ops.Relay{Name: r.name, Position: r.Position, Head: s.relayHead(r.name)})
	}
	for _, c := range s.consumers {
		cfg.Consumers = append(cfg.Consumers, ops.Consumer{Name: c.Name, Stream: c.Stream, Handle: c.Handle,
			Stats: s.consumerStats(c)})
	}
	ops.New(cfg).Register(mux)
}

// relayHead is the head of the log relay name publishes: its module's
// outbox's, or its context's event log's.
func (s *Server) relayHead(name string) func(context.Context) (uint64, error) {
	for _, m := range s.mods {
		for _, o := range m.Outboxes {
			if h, ok := o.Log.(interface {
				Head(context.Context) (uint64, error)
			}); ok && o.Name == name {
				return h.Head
			}
		}
	}
	for _, r := range s.relays {
		if r.name == name && r.log != nil {
			return r.log.Head
		}
	}
	return nil
}

// named is a projection shown under another name.
type named struct {
	name string
	ops.Projection
}

func (n named) Name() string { return n.name }

func (s *Server) consumerStats(c module.Consumer) func(context.Context) (ops.ConsumerStats, error) {
	return func(ctx context.Context) (ops.ConsumerStats, error) {
		st, err := s.bus.ConsumerStats(ctx, c.Consumer)
		return ops.ConsumerStats{Pending: st.Pending, AckPending: st.AckPending, Redelivered: st.Redelivered}, err
	}
}

// upstreams is the gateway's clusters, once it is built.
func (s *Server) upstreams() []ops.Upstream {
	if s.gateway == nil {
		return nil
	}
	var out []ops.Upstream
	for _, u := range s.gateway.Upstreams() {
		out = append(out, ops.Upstream{Name: u.Name, Breaker: u.Cluster, Balancer: u.Balancer})
	}
	return out
}

// opsIdempotency gives the API's POSTs Idempotency-Key handling, with
// the keys in this process's database, as the contexts keep theirs.
func (s *Server) opsIdempotency() func(http.Handler) http.Handler {
	return idempotency.Middleware(idempotency.Options{Store: s.opsKeys, TTL: s.cfg.IdempotencyTTL, Logger: s.log,
		Scope: func(r *http.Request) string { return "ops:" + principal(r, 0) }})
}
