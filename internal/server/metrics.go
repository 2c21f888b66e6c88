package server

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/agora-commerce/agora/internal/platform/telemetry"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/saga"
)

// pendingEvery is how often the consumers' pending messages are asked of
// the broker.
const pendingEvery = 5 * time.Second

// instrument feeds the process's metrics what build made: the requests'
// routes and services (the gateway names them itself; a context's process
// looks them up), the saga engine's backlog, the relays' lag and the
// consumers' pending messages (polled from the broker). The saga engine's
// observer, the modules' metrics and the consumers' redeliveries are
// wired as build makes them; the gateway's, by buildGateway.
func (s *Server) instrument() {
	if s.cfg.Only != "" && s.cfg.Only != Gateway {
		s.metrics.Routes(s.routeOf)
	}
	engines := s.sagaEngines()
	s.metrics.SagaBacklog(func(ctx context.Context) ([]saga.Backlog, error) {
		// One series per type and status: a partitioned context's engines
		// (payments' transfers) add up.
		var out []saga.Backlog
		for _, e := range engines {
			b, err := e.Backlog(ctx)
			if err != nil {
				return nil, err
			}
			for _, x := range b {
				i := slices.IndexFunc(out, func(o saga.Backlog) bool { return o.Type == x.Type && o.Status == x.Status })
				if i < 0 {
					out = append(out, x)
					continue
				}
				o := &out[i]
				o.Count += x.Count
				if !x.Oldest.IsZero() && (o.Oldest.IsZero() || x.Oldest.Before(o.Oldest)) {
					o.Oldest = x.Oldest
				}
			}
		}
		return out, nil
	})
	for _, r := range s.relays {
		s.metrics.Relay(r.Relay)
	}
	s.daemons = append(s.daemons, s.pollPending)
}

// routeOf names a request's route and service for the HTTP metrics of a
// context's process (its ServeMux matches "/" for the whole API): its
// pattern in the route table and the pattern's cluster ("local" for the
// operational endpoints). A request the table does not route keeps its
// ServeMux pattern, with no service.
func (s *Server) routeOf(r *http.Request) (route, service string) {
	rt, ok := s.routes.Match(r)
	if !ok {
		return "", ""
	}
	return rt.Pattern, rt.Cluster
}

// pollPending keeps agora_consumer_pending_messages fresh: each durable
// consumer's messages not yet acknowledged, as the broker counts them.
func (s *Server) pollPending(ctx context.Context) error {
	byName := map[string]messaging.Consumer{}
	var names []string
	for _, c := range s.consumers {
		if c.Ephemeral {
			continue // the broker named it: nothing to ask
		}
		byName[c.Name] = c.Consumer
		names = append(names, c.Name)
	}
	return s.metrics.PollPending(ctx, pendingEvery, names, func(ctx context.Context, name string) (uint64, error) {
		st, err := s.bus.ConsumerStats(ctx, byName[name])
		return st.Pending + st.AckPending, err
	})
}

// bulkheads is the gateway's bulkheads now, for the metrics.
func (s *Server) bulkheads() []telemetry.Bulkhead {
	ups := s.gateway.Upstreams()
	out := make([]telemetry.Bulkhead, 0, len(ups))
	for _, u := range ups {
		out = append(out, telemetry.Bulkhead{Cluster: u.Name, InUse: u.Cluster.InFlight(), Capacity: u.Cluster.MaxConcurrent()})
	}
	return out
}

// sagaEngines are the engines of this process's contexts that drive a
// saga type (ordering's checkouts, payments' transfers).
func (s *Server) sagaEngines() []*saga.Engine {
	var out []*saga.Engine
	for _, c := range s.logs() {
		if len(c.engine.Types()) > 0 {
			out = append(out, c.engine)
		}
	}
	return out
}
