package server

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bff/bffmod"
	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/identity/identitymod"
	"github.com/agora-commerce/agora/internal/inventory/inventorymod"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/ordering/orderingmod"
	"github.com/agora-commerce/agora/internal/payments/paymentsmod"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/tracing"
	"github.com/agora-commerce/agora/internal/shipping/shippingmod"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/projection"
)

// Modules are the platform's modules: a new bounded context is one
// package and one line here.
var Modules = []module.Def{
	identitymod.Module,
	paymentsmod.Module,
	catalogmod.Module,
	inventorymod.Module,
	orderingmod.Module,
	shippingmod.Module,
	bffmod.Module,
}

// built is a module this process runs.
type built struct {
	def module.Def
	*module.Module
	// storage is the context's own.
	storage *contextStore
}

// relay is a relay from a log to the bus, named for its checkpoint.
type relay struct {
	name string
	*messaging.Relay
	// log is the context's event log it relays (nil: an outbox).
	log eventstore.Store
}

// build builds defs, each on a platform of its own storage (opened here:
// a process opens only the contexts it runs), and gathers what they run:
// their projections, consumers and daemons; their answers, in this
// process's exchange (and, distributed, on the bus); relays of their
// events; and the bus's streams for every module's subjects.
func (s *Server) build(ctx context.Context, defs []module.Def) error {
	distributed := s.cfg.Only != ""
	var requester call.Requester
	if distributed {
		requester = s.bus // the other contexts answer over the bus
	}
	s.calls = call.NewExchange(requester)
	for _, d := range defs {
		c, err := s.openContext(ctx, d.Name, d.Partitioned)
		if err != nil {
			return err
		}
		s.stores = append(s.stores, c)
		attrs := []attribute.KeyValue{tracing.ServiceKey.String(d.Name)}
		project := func(log *contextStore, db *sql.DB) func(context.Context, projection.Projection) (*projection.Runner, error) {
			return func(ctx context.Context, pr projection.Projection) (*projection.Runner, error) {
				// On PostgreSQL several instances may share the read models:
				// fence each batch on its checkpoint (projection.Options.Shared).
				r := projection.NewRunner(log.store, db, pr, projection.Options{Logger: s.log, Shared: s.cfg.PostgresURL != "",
					SpanAttributes: attrs})
				if err := r.Init(ctx); err != nil {
					return nil, err
				}
				s.metrics.Projection(r)
				log.runners = append(log.runners, r)
				return r, nil
			}
		}
		p := &module.Platform{
			Settings: module.Settings{DataDir: s.cfg.DataDir, Postgres: s.cfg.PostgresURL != "",
				CheckoutMode: s.cfg.CheckoutMode, CheckoutTimeout: s.cfg.CheckoutTimeout,
				MerchantAccountID: s.cfg.MerchantAccountID, BootstrapAdmin: s.cfg.BootstrapAdmin, Carrier: s.Carrier},
			DB: c.db, Redis: s.redis, Calls: s.calls, Registry: s.reg, Client: s.client,
			Verifier: s.verifier, Revocations: s.revoked, Logger: s.log, Metrics: s.metrics,
		}
		if c.store != nil {
			p.Store, p.Sagas, p.Project = c.store, c.engine, project(c, c.db)
		}
		for _, part := range c.parts {
			p.Partitions = append(p.Partitions, module.Partition{Store: part.store, DB: part.db, Sagas: part.engine, Project: project(part, c.db)})
		}
		m, err := d.New(ctx, p)
		if err != nil {
			return fmt.Errorf("module %s: %w", d.Name, err)
		}
		// The saga indexes' tables exist before anything is served (the
		// engines' Run would make them, but an audit may come first).
		for _, log := range c.logs() {
			if len(log.engine.Types()) > 0 {
				if err := log.engine.Index().Init(ctx); err != nil {
					return fmt.Errorf("module %s: %w", d.Name, err)
				}
			}
		}
		s.mods = append(s.mods, &built{d, m, c})
		s.calls.Add(m.Answers...)
		s.runners = append(s.runners, m.Projections...)
		for _, c := range m.Consumers {
			c.Handle = s.metrics.Consumer(c.Name, traced(d.Name, c.Handle))
			s.consumers = append(s.consumers, c)
		}
		s.daemons = append(s.daemons, m.Daemons...)
		if distributed && !d.Partitioned { // a partitioned context's: routed to its partitions' holders (openDistributed)
			for _, a := range m.Answers {
				s.daemons = append(s.daemons, func(ctx context.Context) error { return s.bus.Respond(ctx, a.Subject, a.Owner, a.Respond) })
			}
		}
	}
	if err := s.plumb(ctx); err != nil {
		return err
	}
	s.instrument() // after plumb, which makes the relays
	return nil
}

// plumb makes the bus's streams (every module's subjects, whichever this
// process builds), repairs its consumers and relays its modules' events:
// each context's event log through a relay of its own, and each outbox
// through its own, their checkpoints in the context's database.
func (s *Server) plumb(ctx context.Context) error {
	streams := map[string][]string{}
	for _, d := range Modules {
		if d.Stream != "" {
			streams[d.Stream] = append(streams[d.Stream], d.Subjects...)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(streams)) {
		if err := s.bus.EnsureStream(ctx, name, streams[name]...); err != nil {
			return err
		}
	}
	for _, c := range s.consumers {
		if err := s.bus.Repair(ctx, c.Consumer); err != nil {
			return err
		}
	}
	for _, m := range s.mods {
		// Every log's state keeps relay checkpoints (the audit reads them),
		// whether or not a relay runs there.
		checkpoints := map[*contextStore]messaging.Checkpoints{}
		for _, c := range append([]*contextStore{m.storage}, m.storage.parts...) {
			cps, err := messaging.SQLCheckpoints(ctx, c.db)
			if err != nil {
				return err
			}
			checkpoints[c] = cps
		}
		// add relays l to stream, its checkpoint in the state of log c.
		add := func(c *contextStore, name string, l messaging.Log, stream string, events eventstore.Store) {
			cps := checkpoints[c]
			o := messaging.RelayOptions{Name: name, Tail: s.bus.Tail(stream), Logger: s.log,
				SpanAttributes: []attribute.KeyValue{attribute.String("messaging.system", "nats"), tracing.ServiceKey.String(m.def.Name)}}
			if s.cfg.PostgresURL != "" {
				// Several instances may run the relay: a session lock lets one
				// publish while the others stand by. Advisory locks are the
				// database's; checkpoints, the schema's.
				o.Leader = messaging.PostgresLeader(c.db, "relay/"+c.schema+"/"+name, time.Second, s.log)
			}
			r := messaging.NewRelay(l, s.bus, cps, o)
			s.bus.OnReconnect(r.RequestRewind)
			s.relays = append(s.relays, relay{name, r, events})
			c.relays = append(c.relays, relay{name, r, events})
		}
		for _, o := range m.Outboxes {
			add(m.storage, o.Name, o.Log, m.def.Stream, nil)
		}
		if m.Publish == nil {
			continue
		}
		// Each log's relay (a partitioned context's: each partition's).
		for _, c := range m.storage.logs() {
			add(c, "events-"+c.name, messaging.EventLog(c.store, m.Publish), m.def.Stream, c.store)
		}
	}
	return nil
}

// traced is consumer handler h of context service: its deliveries'
// spans (natsbus's) name the context, and its log lines the request
// that caused the message (its correlation ID).
func traced(service string, h messaging.Handler) messaging.Handler {
	attr := tracing.ServiceKey.String(service)
	return func(ctx context.Context, d messaging.Delivery) error {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(attr)
		}
		return h(tracing.WithRequestID(ctx, d.Headers[messaging.HeaderCorrelation]), d)
	}
}

// Service returns the application service of module name, for tests and
// tools that look behind its API (nil if this process does not run it).
func (s *Server) Service(name string) any {
	for _, m := range s.mods {
		if m.def.Name == name {
			return m.Service
		}
	}
	return nil
}
