package saga

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/backoff"
	"github.com/agora-commerce/agora/internal/bounded"
	"github.com/agora-commerce/agora/projection"
)

// Options configure an Engine.
type Options struct {
	// Logger receives step failures (default slog.Default()).
	Logger *slog.Logger
	// BaseBackoff is the first retry's delay (default 100ms); each retry
	// doubles it, up to MaxBackoff (default 5s), with jitter.
	BaseBackoff, MaxBackoff time.Duration
	// CompensationAttempts caps a compensation's attempts before the saga
	// is left Failed (default 5).
	CompensationAttempts int
	// Sweep, if set, makes the engine look this often for unfinished
	// instances that have recorded nothing for that long and drive them:
	// with several engines on one store (several instances of a
	// service), the instances of an engine that died are taken over by
	// the others instead of waiting for it to come back. (Two engines
	// driving one instance is safe: appends are optimistic, commands are
	// idempotent.)
	Sweep time.Duration
	// Types, if set, are the only types of instance the engine drives;
	// by default it drives the types registered with it when Run starts.
	// Where the processes of one service run the sagas of its own context
	// only, the others' engines leave them alone. Instances of other types
	// may still be started, aborted and retried here; what that records,
	// an engine that drives the type takes up on its sweep or its start.
	Types []string
	// Observer, if set, is told of every instance started, every attempt
	// at a step and every instance that ends, for metrics.
	Observer Observer
	// SharedIndex says the engines of other processes keep the same
	// index (several instances of a service on one PostgreSQL schema):
	// its projection runner is then Shared (projection.Options), so that
	// each batch is applied once, by one of them, rather than by every
	// engine in turn (twice the work, and deadlocks between the
	// instances' transactions).
	SharedIndex bool
}

// runner is a definition with its data type erased.
type runner interface {
	steps() []stepInfo
	action(ctx context.Context, i int, id string, attempt int, data json.RawMessage) (json.RawMessage, error)
	compensate(ctx context.Context, i int, id string, attempt int, data json.RawMessage, reason string) error
	onEnd(ctx context.Context, id string, status Status, reason string, data json.RawMessage) error
}

type stepInfo struct {
	name        string
	compensable bool
	// overlap: the action may start before the previous step's
	// completion is recorded (Definition.Overlap).
	overlap     bool
	deadline    time.Duration
	maxAttempts int
}

// Engine runs saga instances over an event store.
type Engine struct {
	store eventstore.Store
	db    *sql.DB
	opts  Options
	defs  map[string]runner

	mu sync.Mutex
	// running holds the instances being driven here: each is deleted
	// when its goroutine ends, so it is as large as the instances in
	// flight, never the instances ever seen.
	running map[string]bool
	// started holds the instances started here, and whether fresh (see
	// remember): the newest maxStarted, so that memory stays flat
	// however many instances the engine has started.
	started *bounded.Map[string, bool]
	ctx     context.Context
	wg      sync.WaitGroup
	index   *projection.Runner
	// backlogIndexed: Backlog made its index.
	backlogIndexed bool
}

// NewEngine returns an engine over store, keeping its index of instances
// in db (table saga_instances, maintained by a projection).
func NewEngine(store eventstore.Store, db *sql.DB, opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.CompensationAttempts <= 0 {
		opts.CompensationAttempts = 5
	}
	e := &Engine{store: store, db: db, opts: opts, defs: map[string]runner{}, running: map[string]bool{}, started: bounded.New[string, bool](maxStarted)}
	e.index = projection.NewRunner(store, db, indexProjection{}, projection.Options{Shared: opts.SharedIndex})
	return e
}

// Register adds definition d to e. Register all definitions before Run.
func Register[D any](e *Engine, d Definition[D]) {
	e.defs[d.Type] = typed[D]{d}
}

// Types returns the saga types registered with e, sorted.
func (e *Engine) Types() []string {
	return slices.Sorted(maps.Keys(e.defs))
}

type typed[D any] struct{ d Definition[D] }

func (t typed[D]) steps() []stepInfo {
	out := make([]stepInfo, len(t.d.Steps))
	for i, s := range t.d.Steps {
		out[i] = stepInfo{name: s.Name, compensable: s.Compensate != nil, deadline: s.Deadline, maxAttempts: s.MaxAttempts,
			overlap: t.d.Overlap && s.Compensate != nil && i > 0}
		if out[i].maxAttempts <= 0 {
			out[i].maxAttempts = 5
		}
	}
	return out
}

func (t typed[D]) decode(data json.RawMessage) (*D, error) {
	d := new(D)
	if len(data) > 0 {
		if err := json.Unmarshal(data, d); err != nil {
			return nil, fmt.Errorf("saga %s: decode data: %w", t.d.Type, err)
		}
	}
	return d, nil
}

func (t typed[D]) action(ctx context.Context, i int, id string, attempt int, data json.RawMessage) (json.RawMessage, error) {
	d, err := t.decode(data)
	if err != nil {
		return nil, err
	}
	s := t.d.Steps[i]
	if err := s.Action(ctx, &Exec[D]{SagaID: id, Step: s.Name, Attempt: attempt, Data: d}); err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

func (t typed[D]) compensate(ctx context.Context, i int, id string, attempt int, data json.RawMessage, reason string) error {
	d, err := t.decode(data)
	if err != nil {
		return err
	}
	s := t.d.Steps[i]
	return s.Compensate(ctx, &Exec[D]{SagaID: id, Step: s.Name, Attempt: attempt, Data: d, Reason: reason})
}

func (t typed[D]) onEnd(ctx context.Context, id string, status Status, reason string, data json.RawMessage) error {
	if t.d.OnEnd == nil {
		return nil
	}
	d, err := t.decode(data)
	if err != nil {
		return err
	}
	return t.d.OnEnd(ctx, id, status, reason, *d)
}

// StreamID is the stream of instance id.
func StreamID(id string) string { return "saga-" + id }

// Start begins instance id of definition typ with data, and returns the
// position of its first event. Starting an instance that exists already
// is a no-op (the ID is the idempotency key). Start may be called before
// Run; the instance then starts when Run does.
func (e *Engine) Start(ctx context.Context, typ, id string, data any) (uint64, error) {
	r, ok := e.defs[typ]
	if !ok {
		return 0, fmt.Errorf("saga: unknown type %q", typ)
	}
	e.mu.Lock()
	_, seen := e.started.Peek(id)
	e.mu.Unlock()
	if seen {
		return 0, nil // started here before
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return 0, fmt.Errorf("saga: encode data: %w", err)
	}
	names := make([]string, 0)
	for _, s := range r.steps() {
		names = append(names, s.name)
	}
	body, _ := json.Marshal(event{Type: typ, Steps: names, Data: raw})
	meta, _ := MetadataFrom(ctx)
	evs := []eventstore.EventData{{ID: startID(id), Type: evStarted, Data: body, Metadata: meta}}
	if len(names) > 0 {
		// The first step's first attempt starts in the same append.
		first, _ := json.Marshal(event{Step: 0, Attempt: 1})
		evs = append(evs, eventstore.EventData{ID: firstStepID(id), Type: evStepStarted, Data: first, Metadata: meta})
	}
	res, err := e.store.Append(ctx, StreamID(id), eventstore.NoStream, evs...)
	if errors.Is(err, eventstore.ErrConcurrency) || errors.Is(err, eventstore.ErrDuplicateEvent) {
		e.remember(id, false)
		return 0, nil // started before
	}
	if err != nil {
		return 0, fmt.Errorf("saga: start %s: %w", id, err)
	}
	e.remember(id, len(names) > 0)
	e.drive(id)
	return res.LastPosition, nil
}

// maxStarted bounds the engine's memory of instances it started (about
// 100 bytes each). An instance it forgot costs, when started again, one
// append that fails as a duplicate; one forgotten between its Start and
// its drive runs its first step's next attempt rather than the one Start
// recorded (commands are idempotent, so that is safe).
const maxStarted = 1 << 14

// remember notes that instance id exists, so a repeated Start costs no
// append; fresh marks that this engine just recorded its first step's
// first attempt, so the drive runs that attempt rather than another.
func (e *Engine) remember(id string, fresh bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.started.Put(id, fresh)
}

// takeFresh reports (once) whether Start just recorded instance id's
// first attempt.
func (e *Engine) takeFresh(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	fresh, _ := e.started.Peek(id)
	if fresh {
		e.started.Put(id, false)
	}
	return fresh
}

// Get returns instance id's timeline.
func (e *Engine) Get(ctx context.Context, id string) (Instance, error) {
	st, err := e.load(ctx, id)
	if err != nil {
		return Instance{}, err
	}
	return st.view(), nil
}

// Retry resumes a Failed instance: the compensation that failed is tried
// again, with a fresh budget of attempts.
func (e *Engine) Retry(ctx context.Context, id string) error {
	st, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	if st.status != Failed {
		return ErrNotFailed
	}
	if err := e.append(ctx, st, event{}, evRetried); err != nil {
		return err
	}
	e.drive(id)
	return nil
}

// ErrNotRunning reports an Abort of an instance that is no longer running
// its steps forward (it completed, or is compensating already).
var ErrNotRunning = errors.New("saga: the instance is not running forward")

// Abort stops a Started instance from going further: it compensates every
// completed step, and the step that may be running too (compensations are
// idempotent and must cope with an action that has not happened or is
// still in flight), then ends Compensated with reason.
func (e *Engine) Abort(ctx context.Context, id, reason string) error {
	for attempt := 0; ; attempt++ {
		st, err := e.load(ctx, id)
		if err != nil {
			return err
		}
		if st.status != Started {
			return ErrNotRunning
		}
		ev := event{Reason: reason, Step: -1}
		if i := st.next; i < len(st.attempts) && st.attempts[i] > 0 {
			ev.Step, ev.Uncertain = i, true
		}
		err = e.append(ctx, st, ev, evCompensating)
		if err == nil {
			e.drive(id)
			return nil
		}
		if !errors.Is(err, eventstore.ErrConcurrency) || attempt >= 20 {
			return err
		}
	}
}

// Run resumes every instance that is not finished and runs instances as
// they start, until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if len(e.opts.Types) == 0 {
		for t := range e.defs {
			e.opts.Types = append(e.opts.Types, t)
		}
		slices.Sort(e.opts.Types)
	}
	if len(e.opts.Types) == 0 {
		<-ctx.Done() // nothing registered: nothing to drive
		return ctx.Err()
	}
	if err := e.index.Init(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- e.index.Run(ctx) }()
	head, err := e.store.Head(ctx)
	if err != nil {
		return err
	}
	if err := e.index.WaitFor(ctx, head); err != nil {
		return err
	}
	ids, err := unfinished(ctx, e.db, e.opts.Types)
	if err != nil {
		return err
	}
	for _, id := range ids {
		e.drive(id)
	}
	if e.opts.Sweep > 0 {
		t := time.NewTicker(e.opts.Sweep)
		defer t.Stop()
	sweep:
		for {
			select {
			case <-ctx.Done():
				break sweep
			case <-t.C:
			}
			ids, err := stalled(ctx, e.db, time.Now().Add(-e.opts.Sweep), e.opts.Types)
			if err != nil {
				if ctx.Err() == nil {
					e.opts.Logger.Warn("saga: sweep failed", "err", err)
				}
				continue
			}
			for _, id := range ids {
				e.drive(id)
			}
		}
	}
	<-ctx.Done()
	e.wg.Wait()
	<-errc
	return ctx.Err()
}

// Wait blocks until instance id is Completed, Compensated or Failed, or
// ctx ends.
func (e *Engine) Wait(ctx context.Context, id string) (Instance, error) {
	for {
		in, err := e.Get(ctx, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return in, err
		}
		if err == nil && (in.Status.Terminal() || in.Status == Failed) {
			return in, nil
		}
		// Wake on the next append anywhere (or re-check after a while).
		after, _ := e.store.Head(ctx)
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_ = e.store.WaitForAppend(wctx, after)
		cancel()
		if ctx.Err() != nil {
			return in, ctx.Err()
		}
	}
}

// drive runs instance id in its own goroutine unless one already does (or
// the engine is not running yet).
func (e *Engine) drive(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx == nil || e.ctx.Err() != nil || e.running[id] {
		return
	}
	e.running[id] = true
	ctx := e.ctx
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.running, id)
			e.mu.Unlock()
		}()
		for {
			err := e.advance(ctx, id)
			if err == nil || ctx.Err() != nil {
				return
			}
			if !errors.Is(err, eventstore.ErrConcurrency) {
				e.opts.Logger.Error("saga: stopped", "saga", id, "err", err)
				return
			}
			// Someone else appended (an Abort, another engine): reload and
			// go on from what the stream says now.
		}
	}()
}

func (e *Engine) backoff(attempt int) time.Duration {
	return backoff.Delay(e.opts.BaseBackoff, e.opts.MaxBackoff, attempt)
}

// advance runs instance id until it finishes, fails or ctx ends.
// The state is loaded once and then kept up to date by append; a
// concurrent append elsewhere surfaces as ErrConcurrency, and drive
// reloads.
func (e *Engine) advance(ctx context.Context, id string) (err error) {
	st, err := e.load(ctx, id)
	if err != nil {
		return err
	}
	defer func() {
		// An overlapped append still in flight: its failure is this
		// run's (drive reloads on a conflict).
		if perr := st.settle(); err == nil {
			err = perr
		}
	}()
	if e.takeFresh(id) && st.status == Started && st.next == 0 && st.attempts != nil && st.attempts[0] == 1 {
		// Start recorded this attempt, and nothing has run: no step is
		// ahead of the record.
		st.prestarted[0], st.ahead = true, -1
	}
	if len(e.opts.Types) > 0 && !slices.Contains(e.opts.Types, st.typ) {
		return nil // another engine's to drive
	}
	for {
		r := e.defs[st.typ]
		if r == nil {
			return fmt.Errorf("saga %s: unknown type %q", id, st.typ)
		}
		steps := r.steps()
		switch st.status {
		case Completed, Compensated, Failed:
			return nil
		case Started:
			i := st.next
			if i == len(steps) {
				if err := st.settle(); err != nil {
					return err
				}
				if err := e.onEnd(ctx, r, st, Completed, st.data); err != nil {
					e.opts.Logger.WarnContext(inTrace(ctx, st), "saga: end hook failed; will retry", "saga", id, "err", err)
					if err := backoff.Sleep(ctx, e.backoff(1)); err != nil {
						return err
					}
					continue
				}
				return e.append(ctx, st, event{}, evCompleted)
			}
			if err := e.forward(ctx, r, st, i, steps); err != nil {
				return err
			}
		case Compensating:
			j := st.toCompensate(steps)
			if j < 0 {
				if err := e.onEnd(ctx, r, st, Compensated, st.data); err != nil {
					e.opts.Logger.WarnContext(inTrace(ctx, st), "saga: end hook failed; will retry", "saga", id, "err", err)
					if err := backoff.Sleep(ctx, e.backoff(1)); err != nil {
						return err
					}
					continue
				}
				return e.append(ctx, st, event{Reason: st.reason}, evCompensated)
			}
			if err := e.backward(ctx, r, st, j); err != nil {
				return err
			}
		}
	}
}

// forward makes one attempt at step i.
func (e *Engine) forward(ctx context.Context, r runner, st *state, i int, steps []stepInfo) error {
	s := steps[i]
	attempt := st.attempts[i] + 1
	now := time.Now()
	if st.prestarted[i] {
		// The previous step's completion recorded this attempt's start.
		st.prestarted[i] = false
		attempt = st.attempts[i]
	} else {
		if s.deadline > 0 && !st.firstTry[i].IsZero() && now.After(st.firstTry[i].Add(s.deadline)) {
			return e.append(ctx, st, event{Step: i, Attempt: attempt - 1, Reason: "timeout", Error: "step deadline passed", Uncertain: true}, evStepFailed, evCompensating)
		}
		if err := e.append(ctx, st, event{Step: i, Attempt: attempt}, evStepStarted); err != nil {
			return err
		}
	}
	actx := ctx
	var cancel context.CancelFunc = func() {}
	if s.deadline > 0 {
		first := st.firstTry[i]
		if first.IsZero() {
			first = now
		}
		actx, cancel = context.WithDeadline(ctx, first.Add(s.deadline))
	}
	sctx, span := stepSpan(actx, st, steps[i].name, i, attempt, false)
	if i == 0 && attempt == 1 && e.opts.Observer != nil {
		e.opts.Observer.Started(st.typ) // the instance's first attempt at its first step: once per instance
	}
	began := time.Now()
	data, err := r.action(sctx, i, st.id, attempt, st.data)
	endStep(span, err)
	timedOut := actx.Err() != nil && ctx.Err() == nil
	if ctx.Err() == nil {
		e.observeStep(st, i, false, err, timedOut, began)
	}
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil && bytes.Equal(data, st.data) {
		data = nil // the step left the data as it was: nothing to record
	}
	if err == nil {
		if i+1 < len(steps) {
			// Record the next step's first attempt with this completion:
			// one append per step instead of two.
			types := []string{evStepCompleted, evStepStarted}
			bodies := []event{{Step: i, Data: data}, {Step: i + 1, Attempt: st.attempts[i+1] + 1}}
			var err error
			if steps[i+1].overlap {
				err = e.appendAsync(ctx, st, types, bodies)
			} else {
				err = e.appendEach(ctx, st, types, bodies)
			}
			if err == nil {
				st.prestarted[i+1] = true
			}
			return err
		}
		// The last step: when the end hook succeeds, the saga's completion
		// goes into the same append (else advance retries the hook).
		final := data
		if final == nil {
			final = st.data
		}
		if err := st.settle(); err != nil {
			return err // the step before did not record: not done yet
		}
		if err := e.onEnd(ctx, r, st, Completed, final); err == nil {
			return e.appendEach(ctx, st, []string{evStepCompleted, evCompleted}, []event{{Step: i, Data: data}, {}})
		}
		return e.append(ctx, st, event{Step: i, Data: data}, evStepCompleted)
	}
	if reason := ReasonOf(err); reason != "" {
		// A business failure: the step did nothing to undo.
		return e.append(ctx, st, event{Step: i, Attempt: attempt, Reason: reason, Error: err.Error()}, evStepFailed, evCompensating)
	}
	if timedOut || attempt >= s.maxAttempts {
		// The step's outcome is unknown: compensate it too.
		reason := "step_failed"
		if timedOut {
			reason = "timeout"
		}
		return e.append(ctx, st, event{Step: i, Attempt: attempt, Reason: reason, Error: err.Error(), Uncertain: true}, evStepFailed, evCompensating)
	}
	e.opts.Logger.WarnContext(sctx, "saga: step failed; retrying", "saga", st.id, "step", s.name, "attempt", attempt, "err", err)
	if err := e.append(ctx, st, event{Step: i, Attempt: attempt, Error: err.Error()}, evStepFailed); err != nil {
		return err
	}
	return backoff.Sleep(ctx, e.backoff(attempt))
}

// backward makes one attempt at compensating step j.
func (e *Engine) backward(ctx context.Context, r runner, st *state, j int) error {
	attempt := st.compAttempts[j] + 1
	if err := e.append(ctx, st, event{Step: j, Attempt: attempt}, evStepCompensating); err != nil {
		return err
	}
	cctx, span := stepSpan(ctx, st, r.steps()[j].name, j, attempt, true)
	began := time.Now()
	err := r.compensate(cctx, j, st.id, attempt, st.data, st.reason)
	endStep(span, err)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e.observeStep(st, j, true, err, false, began)
	if err == nil {
		return e.append(ctx, st, event{Step: j}, evStepCompensated)
	}
	e.opts.Logger.WarnContext(cctx, "saga: compensation failed", "saga", st.id, "step", j, "attempt", attempt, "err", err)
	if attempt-st.compBudgetFrom[j] >= e.opts.CompensationAttempts {
		return e.append(ctx, st, event{Step: j, Attempt: attempt, Error: err.Error()}, evCompensationError, evFailed)
	}
	if err := e.append(ctx, st, event{Step: j, Attempt: attempt, Error: err.Error()}, evCompensationError); err != nil {
		return err
	}
	return backoff.Sleep(ctx, e.backoff(attempt))
}

// append records events of the given types with body ev, at the
// instance's version, and folds them into st.
func (e *Engine) append(ctx context.Context, st *state, ev event, types ...string) error {
	bodies := make([]event, len(types))
	for i := range bodies {
		bodies[i] = ev
	}
	return e.appendEach(ctx, st, types, bodies)
}

// encode turns types[i] and bodies[i] into events.
func encode(types []string, bodies []event) ([]eventstore.EventData, error) {
	evs := make([]eventstore.EventData, len(types))
	for i, t := range types {
		body, err := json.Marshal(bodies[i])
		if err != nil {
			return nil, err
		}
		evs[i] = eventstore.EventData{Type: t, Data: body}
	}
	return evs, nil
}

// appendAsync is appendEach without waiting: the events are folded into
// st at once and written in the background; the next append (or the end
// of advance) waits for the write and fails with it.
func (e *Engine) appendAsync(ctx context.Context, st *state, types []string, bodies []event) error {
	return e.record(ctx, st, types, bodies, false)
}

// appendEach records events of types[i] with bodies[i] in one append.
func (e *Engine) appendEach(ctx context.Context, st *state, types []string, bodies []event) error {
	return e.record(ctx, st, types, bodies, true)
}

// record appends the events at the instance's version — waiting for the
// write, or leaving it in st.pending — and folds them into st.
func (e *Engine) record(ctx context.Context, st *state, types []string, bodies []event, wait bool) error {
	if err := st.settle(); err != nil {
		return err
	}
	evs, err := encode(types, bodies)
	if err != nil {
		return err
	}
	meta, ok := MetadataFrom(ctx)
	if !ok {
		meta = st.meta
	}
	for i := range evs {
		evs[i].Metadata = meta
	}
	expected := st.version
	write := func() error {
		if _, err := e.store.Append(ctx, StreamID(st.id), eventstore.Exact(expected), evs...); err != nil {
			return fmt.Errorf("saga %s: %w", st.id, err)
		}
		return nil
	}
	if wait {
		if err := write(); err != nil {
			return err
		}
	} else {
		done := make(chan error, 1)
		go func() { done <- write() }()
		st.pending = done
	}
	now := time.Now().UTC()
	for i, t := range types {
		st.apply(t, bodies[i], now)
	}
	st.version = expected + uint64(len(evs)) // an append at Exact(v) leaves the stream at v+n
	if wait {
		e.observeEnd(st, types) // an end is never written in the background
	}
	return nil
}

func (e *Engine) load(ctx context.Context, id string) (*state, error) {
	st := &state{id: id}
	from := uint64(1)
	for {
		recs, err := e.store.ReadStream(ctx, StreamID(id), eventstore.StreamRead{From: from, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			var ev event
			if err := json.Unmarshal(r.Data, &ev); err != nil {
				return nil, fmt.Errorf("saga %s: event %d: %w", id, r.Version, err)
			}
			st.apply(r.Type, ev, r.RecordedAt)
			st.version = r.Version
			if r.Type == evStarted {
				st.meta = r.Metadata
			}
		}
		if len(recs) < 1000 {
			break
		}
		from = recs[len(recs)-1].Version + 1
	}
	if st.version == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	st.ahead = -1
	if st.status != Completed && st.next < len(st.attempts) && st.attempts[st.next] > 0 {
		// A step started and not recorded as completed: a driver that
		// overlapped may have run the next one.
		st.ahead = st.next + 1
	}
	return st, nil
}
