package ops

import (
	"net/http"
	"time"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// ProjectionStatus is a projection runner's progress.
type ProjectionStatus struct {
	// Name is the projection's name.
	Name string `json:"name"`
	// Checkpoint is the last position it applied.
	Checkpoint uint64 `json:"checkpoint"`
	// Lag is how far it is behind the head.
	Lag uint64 `json:"lag"`
	// Rebuilding tells whether a rebuild started here is running.
	Rebuilding bool `json:"rebuilding"`
	// Rebuild is the last rebuild started in this process (nil: none
	// since it started).
	Rebuild *RebuildStatus `json:"rebuild,omitempty"`
}

// RebuildStatus is how far a projection's rebuild has got.
type RebuildStatus struct {
	// State is "running", "done" or "failed".
	State string `json:"state"`
	// Position is the log position replayed so far; Target is the head
	// when the rebuild began (0 until it is known).
	Position uint64 `json:"position"`
	Target   uint64 `json:"target"`
	// StartedAt and EndedAt (zero while running) bound it.
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Error says why a failed rebuild failed.
	Error string `json:"error,omitempty"`
}

// A rebuild's states.
const (
	rebuildRunning = "running"
	rebuildDone    = "done"
	rebuildFailed  = "failed"
)

// RelayStatus is a relay's progress.
type RelayStatus struct {
	// Name is the relay's name.
	Name string `json:"name"`
	// Checkpoint is the last position it published.
	Checkpoint uint64 `json:"checkpoint"`
	// Head is the highest position of the log it relays.
	Head uint64 `json:"head"`
	// Lag is Head - Checkpoint.
	Lag uint64 `json:"lag"`
}

// ConsumerStatus is a consumer's backlog.
type ConsumerStatus struct {
	// Name is the consumer's name.
	Name string `json:"name"`
	// Stream is the bus stream it consumes.
	Stream string `json:"stream"`
	// Pending, AckPending and Redelivered are the broker's counts.
	Pending     uint64 `json:"pending"`
	AckPending  uint64 `json:"ack_pending"`
	Redelivered uint64 `json:"redelivered"`
	// Dead counts its dead letters of the caller's tenant.
	Dead int `json:"dead"`
}

type processingView struct {
	// Head is the sum of the contexts' heads, Heads each one's.
	Head        uint64             `json:"head"`
	Heads       map[string]uint64  `json:"heads"`
	Projections []ProjectionStatus `json:"projections"`
	Relays      []RelayStatus      `json:"relays"`
	Consumers   []ConsumerStatus   `json:"consumers"`
}

// processing serves GET /api/v1/ops/processing: how far this process's
// projections, relays and consumers have got.
func (a *API) processing(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r)
	if !ok {
		return
	}
	if len(a.cfg.Logs) == 0 {
		httpapi.Error(w, r, errNotHere)
		return
	}
	ctx := r.Context()
	heads, head, err := a.heads(ctx)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	v := processingView{Head: head, Heads: heads, Projections: []ProjectionStatus{}, Relays: []RelayStatus{}, Consumers: []ConsumerStatus{}}
	for _, p := range a.cfg.Projections {
		lag, err := p.Lag(ctx)
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		st := ProjectionStatus{Name: p.Name(), Checkpoint: p.Position(), Lag: lag}
		a.mu.Lock()
		if rb := a.rebuilds[p.Name()]; rb != nil {
			c := *rb
			st.Rebuild, st.Rebuilding = &c, c.State == rebuildRunning
		}
		a.mu.Unlock()
		v.Projections = append(v.Projections, st)
	}
	for _, rl := range a.cfg.Relays {
		pos := rl.Position()
		st := RelayStatus{Name: rl.Name, Checkpoint: pos, Head: pos}
		if rl.Head != nil {
			h, err := rl.Head(ctx)
			if err != nil {
				httpapi.Error(w, r, err)
				return
			}
			st.Head = max(h, pos) // an outbox pruned behind its relay
		}
		st.Lag = st.Head - pos
		v.Relays = append(v.Relays, st)
	}
	dead := map[string]int{}
	if a.cfg.DeadLetters != nil {
		if dead, err = a.cfg.DeadLetters.counts(ctx, tenants(c.Tenant)); err != nil {
			httpapi.Error(w, r, err)
			return
		}
	}
	for _, cons := range a.cfg.Consumers {
		st := ConsumerStatus{Name: cons.Name, Stream: cons.Stream, Dead: dead[cons.Name]}
		if cons.Stats != nil {
			s, err := cons.Stats(ctx)
			if err != nil {
				// The broker's counts are advice: the rest still answers.
				a.cfg.Logger.Warn("ops: consumer stats", "consumer", cons.Name, "err", err)
			}
			st.Pending, st.AckPending, st.Redelivered = s.Pending, s.AckPending, s.Redelivered
		}
		v.Consumers = append(v.Consumers, st)
	}
	httpapi.JSON(w, http.StatusOK, v)
}

// rebuild serves POST /api/v1/ops/projections/{name}/rebuild: the
// projection's read model is emptied and replayed from the log in the
// background, while its runner goes on running (projection.Runner's
// Rebuild). 202 at once; an unknown name is a 404, a rebuild of it still
// running a 409 rebuild_running.
func (a *API) rebuild(w http.ResponseWriter, r *http.Request) {
	if _, ok := begin(w, r); !ok {
		return
	}
	name := r.PathValue("name")
	if err := text("name", name, 256); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if err := httpapi.EmptyBody(w, r); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if len(a.cfg.Logs) == 0 {
		httpapi.Error(w, r, errNotHere)
		return
	}
	var p Projection
	for _, q := range a.cfg.Projections {
		if q.Name() == name {
			p = q
		}
	}
	if p == nil {
		httpapi.Error(w, r, errUnknown("projection_not_found", "no such projection in this process"))
		return
	}
	a.mu.Lock()
	if rb := a.rebuilds[name]; rb != nil && rb.State == rebuildRunning {
		a.mu.Unlock()
		httpapi.Error(w, r, &errs.Error{Code: errs.Conflict, Reason: "rebuild_running", Message: "a rebuild of " + name + " is running"})
		return
	}
	rb := &RebuildStatus{State: rebuildRunning, StartedAt: time.Now().UTC()}
	a.rebuilds[name] = rb
	a.mu.Unlock()
	log := a.cfg.Logger
	go func() {
		err := p.Rebuild(a.cfg.Context, func(pos, target uint64) {
			a.mu.Lock()
			rb.Position, rb.Target = pos, target
			a.mu.Unlock()
		})
		if err != nil && a.cfg.Context.Err() == nil {
			log.Error("ops: rebuild failed", "projection", name, "err", err)
		}
		end := time.Now().UTC()
		a.mu.Lock()
		defer a.mu.Unlock()
		rb.EndedAt = &end
		if err != nil {
			rb.State, rb.Error = rebuildFailed, err.Error()
			return
		}
		rb.State = rebuildDone
		rb.Position = max(rb.Position, p.Position())
	}()
	httpapi.JSON(w, http.StatusAccepted, map[string]string{"name": name, "status": "rebuilding"})
}
