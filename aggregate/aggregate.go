// Package aggregate loads and saves event-sourced aggregates on an
// eventstore.Store with Go generics and no reflection: a domain type says
// how an event changes its state (Evolve) and how its events map to stored
// records (Encode, Decode); the Repository does the rest.
//
// Loading reads the latest snapshot (if its state version matches) and the
// tail of the stream after it. Handling a command loads, runs a decide
// function that returns new events, appends them with the loaded version as
// the expected version, and retries a bounded number of times on a
// concurrency conflict, re-running decide on fresh state. Every
// SnapshotEvery events the repository saves a snapshot.
package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/backoff"
)

// Type describes an aggregate type with state S and events E.
type Type[S, E any] struct {
	// Name prefixes stream IDs: the stream of aggregate id is "Name-id".
	Name string
	// Initial returns the state of an aggregate with no events.
	Initial func() S
	// Evolve returns the state after e. It must not fail: events are facts.
	Evolve func(s S, e E) S
	// Encode turns a domain event into an event to append.
	Encode func(e E) (eventstore.EventData, error)
	// Decode turns a stored record into a domain event.
	Decode func(r eventstore.Record) (E, error)
	// SnapshotEvery saves a snapshot each time the stream's version crosses
	// a multiple of it; 0 disables snapshots. A state whose snapshot is
	// large is snapshotted less often: only once the events since its last
	// snapshot number at least the snapshot's size / snapshotBytesPerEvent,
	// so that the cost of snapshots stays proportional to the events
	// appended however large the state grows.
	SnapshotEvery uint64
	// StateVersion identifies the shape of S in snapshots. Bump it when S
	// changes: older snapshots are then ignored and the stream replayed.
	StateVersion int
}

// StreamID returns the stream ID of aggregate id.
func (t Type[S, E]) StreamID(id string) string { return t.Name + "-" + id }

// Loaded is an aggregate's state at a version.
type Loaded[S any] struct {
	// ID is the aggregate's ID.
	ID string
	// Version is the number of events applied; 0 for a new aggregate.
	Version uint64
	// State is the state after Version events.
	State S
}

// Result is the outcome of a handled command.
type Result[S, E any] struct {
	Loaded[S]
	// Events are the new events (empty if the command decided none).
	Events []E
	// Append tells where the events landed; zero if there were none.
	Append eventstore.AppendResult
}

// Repository loads and saves aggregates of one Type.
type Repository[S, E any] struct {
	store   eventstore.Store
	typ     Type[S, E]
	retries int
	// queue is set when commands on one aggregate queue in this process
	// (see Handle); the expected-version check still guards against
	// other processes.
	queue  bool
	qmu    sync.Mutex
	queues map[string]*queue[S, E]

	// cache keeps the state each aggregate had after its last command here
	// (WithCache), so a hot aggregate is not rebuilt from its snapshot for
	// every command; the stream's tail is still read before deciding.
	cacheMu   sync.Mutex
	cache     map[string]cached[S]
	cacheCap  int
	assumeNew bool
}

// cached is a cached state and what the repository knows of its latest
// snapshot (for spacing snapshots by their size: see snapshotDue).
type cached[S any] struct {
	Loaded[S]
	snap snapInfo
}

// snapInfo describes an aggregate's latest snapshot: its version and its
// encoded size.
type snapInfo struct {
	version uint64
	bytes   int
}

// errGuessedWrong reports that an AssumeNew guess did not hold.
var errGuessedWrong = errors.New("aggregate: the aggregate was not new")

// Option configures a Repository.
type Option func(*options)

type options struct {
	retries, stripes, cache int
	assumeNew               bool
}

// AssumeNew makes Handle, for an aggregate it has not cached, first decide
// on the initial state and append expecting no stream, reading nothing;
// only if that fails (the stream exists) or decides nothing does it load.
// It suits aggregates that are usually new when first touched (one per
// order, say): their first command costs no read. Decide functions must
// be free of side effects, as they may run twice.
func AssumeNew() Option { return func(o *options) { o.assumeNew = true } }

// WithCache keeps the latest state of up to n aggregates in memory for
// Handle. Handle still reads the stream's tail after the cached version, so
// events appended by other processes are never missed. Evolve may then
// update a cached state in place (a map in S, say): read Result.State
// right away, under no assumption that it stays unchanged. Commands on the
// same aggregate are serialised by Handle's queue, so keep it on.
func WithCache(n int) Option { return func(o *options) { o.cache = n } }

// WithRetries sets how many times Handle retries a concurrency conflict
// (default 5).
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithLockStripes(0) turns off the in-process queue of same-aggregate
// commands (every command then loads and appends on its own, and
// contention surfaces as retried conflicts); any other n keeps it on. The
// name is kept from when the queue was a set of mutex stripes.
func WithLockStripes(n int) Option { return func(o *options) { o.stripes = n } }

// NewRepository returns a repository for typ on store.
func NewRepository[S, E any](store eventstore.Store, typ Type[S, E], opts ...Option) *Repository[S, E] {
	o := options{retries: 5, stripes: 256}
	for _, f := range opts {
		f(&o)
	}
	r := &Repository[S, E]{store: store, typ: typ, retries: o.retries, queue: o.stripes > 0, assumeNew: o.assumeNew}
	if o.cache > 0 && o.stripes > 0 {
		r.cacheCap, r.cache = o.cache, make(map[string]cached[S])
	}
	return r
}

// Type returns the repository's aggregate type.
func (r *Repository[S, E]) Type() Type[S, E] { return r.typ }

// Load returns the aggregate's current state. An aggregate with no events
// loads as Initial() at version 0.
func (r *Repository[S, E]) Load(ctx context.Context, id string) (Loaded[S], error) {
	c, err := r.load(ctx, id)
	return c.Loaded, err
}

// load is Load, also telling which snapshot it started from.
func (r *Repository[S, E]) load(ctx context.Context, id string) (cached[S], error) {
	stream := r.typ.StreamID(id)
	c := cached[S]{Loaded: Loaded[S]{ID: id, State: r.typ.Initial()}}
	if r.typ.SnapshotEvery > 0 {
		snap, ok, err := r.store.LoadSnapshot(ctx, stream)
		if err != nil {
			return c, fmt.Errorf("aggregate: load snapshot of %s: %w", stream, err)
		}
		if ok && snap.StateVersion == r.typ.StateVersion {
			s := r.typ.Initial()
			if err := json.Unmarshal(snap.State, &s); err == nil {
				c.State, c.Version = s, snap.Version
				c.snap = snapInfo{version: snap.Version, bytes: len(snap.State)}
			}
			// A snapshot that does not decode is ignored: replay is always correct.
		}
	}
	var err error
	c.Loaded, err = r.tail(ctx, c.Loaded)
	return c, err
}

// tail folds the events after l.Version into l.
func (r *Repository[S, E]) tail(ctx context.Context, l Loaded[S]) (Loaded[S], error) {
	stream := r.typ.StreamID(l.ID)
	for {
		recs, err := r.store.ReadStream(ctx, stream, eventstore.StreamRead{From: l.Version + 1, Limit: eventstore.DefaultReadLimit})
		if err != nil {
			return l, fmt.Errorf("aggregate: read %s: %w", stream, err)
		}
		for _, rec := range recs {
			e, err := r.typ.Decode(rec)
			if err != nil {
				return l, fmt.Errorf("aggregate: decode %s v%d: %w", stream, rec.Version, err)
			}
			l.State = r.typ.Evolve(l.State, e)
			l.Version = rec.Version
		}
		if len(recs) < eventstore.DefaultReadLimit {
			return l, nil
		}
	}
}

// Decide is a command: given the current state, it returns the events to
// append, or an error (typically a broken business rule) to append none.
type Decide[S, E any] func(l Loaded[S]) ([]E, error)

// Handle loads the aggregate, runs decide, and appends its events
// expecting the loaded version. On a concurrency conflict it reloads and
// runs decide again, up to the repository's retry limit. meta is stamped
// on every event.
//
// Commands on the same aggregate within this process queue rather than
// conflict, and the queue is handled in batches: one load, each decide in
// arrival order on the state its predecessors left, one append for all
// their events (a command that fails decides nothing and does not fail
// the others). A hot aggregate — a merchant's account credited by every
// order — then costs one commit per batch instead of one per command.
func (r *Repository[S, E]) Handle(ctx context.Context, id string, meta eventstore.Metadata, decide Decide[S, E]) (Result[S, E], error) {
	if !r.queue {
		return r.retry(ctx, id, []*command[S, E]{{meta: meta, decide: decide}})
	}
	c := &command[S, E]{meta: meta, decide: decide, done: make(chan struct{})}
	r.qmu.Lock()
	if r.queues == nil {
		r.queues = make(map[string]*queue[S, E])
	}
	q := r.queues[id]
	if q == nil {
		q = &queue[S, E]{}
		r.queues[id] = q
	}
	q.waiting = append(q.waiting, c)
	lead := !q.busy
	q.busy = true
	r.qmu.Unlock()
	if !lead {
		<-c.done // a leader ran it, or handed the lead to it
		if !c.lead {
			return c.res, c.err
		}
	}
	// Lead: run one batch (which includes c), then hand the lead on.
	r.qmu.Lock()
	batch := q.waiting
	if len(batch) > maxBatch {
		batch = batch[:maxBatch]
	}
	q.waiting = q.waiting[len(batch):]
	r.qmu.Unlock()
	// The batch carries other callers' commands: one caller giving up
	// must not fail them, so it runs detached, bounded in time.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	_, _ = r.retry(bctx, id, batch)
	cancel()
	r.qmu.Lock()
	if len(q.waiting) > 0 {
		next := q.waiting[0]
		next.lead = true
		close(next.done)
	} else {
		q.busy = false
		delete(r.queues, id)
	}
	r.qmu.Unlock()
	for _, b := range batch {
		if b != c {
			close(b.done)
		}
	}
	return c.res, c.err
}

// maxBatch caps the commands one append carries.
const maxBatch = 256

// batchTimeout bounds one batch, retries included.
const batchTimeout = 30 * time.Second

// command is one Handle call waiting in its aggregate's queue.
type command[S, E any] struct {
	meta   eventstore.Metadata
	decide Decide[S, E]
	res    Result[S, E]
	err    error
	done   chan struct{}
	lead   bool // woken to lead the next batch, not with a result
}

type queue[S, E any] struct {
	waiting []*command[S, E]
	busy    bool
}

// retry runs batch, reloading and deciding again on a concurrency
// conflict, up to the retry limit; it leaves each command's outcome in it.
func (r *Repository[S, E]) retry(ctx context.Context, id string, batch []*command[S, E]) (Result[S, E], error) {
	guess := r.assumeNew && !r.cached(id)
	for attempt := 0; ; attempt++ {
		err := r.handleBatch(ctx, id, batch, guess)
		if guess {
			guess = false
			if errors.Is(err, errGuessedWrong) || errors.Is(err, eventstore.ErrConcurrency) {
				attempt--
				continue // load it after all; this costs no retry
			}
		}
		if err == nil || !errors.Is(err, eventstore.ErrConcurrency) || attempt >= r.retries {
			if err != nil {
				for _, c := range batch {
					if c.err == nil {
						c.err = err
					}
				}
			}
			return batch[0].res, batch[0].err
		}
		// Back off a little, with jitter, so contending writers spread out.
		if err := backoff.Sleep(ctx, backoff.Delay(time.Millisecond, 32*time.Millisecond, attempt+1)); err != nil {
			for _, c := range batch {
				c.err = err
			}
			return batch[0].res, err
		}
	}
}

// Current returns the aggregate's state through Handle's queue and cache:
// the same as Load for an aggregate this repository has just handled, but
// without reading its snapshot and stream again.
func (r *Repository[S, E]) Current(ctx context.Context, id string) (Loaded[S], error) {
	res, err := r.Handle(ctx, id, eventstore.Metadata{}, func(Loaded[S]) ([]E, error) { return nil, nil })
	return res.Loaded, err
}

// loadCached returns the cached state of id brought up to date, or loads it.
func (r *Repository[S, E]) loadCached(ctx context.Context, id string) (cached[S], error) {
	if r.cache == nil {
		return r.load(ctx, id)
	}
	r.cacheMu.Lock()
	c, ok := r.cache[id]
	r.cacheMu.Unlock()
	if !ok {
		return r.load(ctx, id)
	}
	var err error
	if c.Loaded, err = r.tail(ctx, c.Loaded); err != nil {
		r.forget(id)
	}
	return c, err
}

func (r *Repository[S, E]) remember(l cached[S]) {
	if r.cache == nil {
		return
	}
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if _, ok := r.cache[l.ID]; !ok && len(r.cache) >= r.cacheCap {
		for k := range r.cache { // evict an arbitrary entry
			delete(r.cache, k)
			break
		}
	}
	r.cache[l.ID] = l
}

func (r *Repository[S, E]) cached(id string) bool {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	_, ok := r.cache[id]
	return ok
}

func (r *Repository[S, E]) forget(id string) {
	if r.cache == nil {
		return
	}
	r.cacheMu.Lock()
	delete(r.cache, id)
	r.cacheMu.Unlock()
}

// handleBatch loads the aggregate once and runs every command of batch
// in order on the evolving state, then appends all their events at once.
// It returns the append's error (a concurrency conflict: run it again);
// commands' own decide errors are left in them.
func (r *Repository[S, E]) handleBatch(ctx context.Context, id string, batch []*command[S, E], guess bool) error {
	var l Loaded[S]
	var snap snapInfo
	if guess {
		l = Loaded[S]{ID: id, State: r.typ.Initial()}
	} else {
		c, err := r.loadCached(ctx, id)
		if err != nil {
			return err
		}
		r.remember(c)
		l, snap = c.Loaded, c.snap
	}
	before := l.Version
	var data []eventstore.EventData
	cur := l
	for _, c := range batch {
		c.res, c.err = Result[S, E]{Loaded: cur}, nil
		events, err := c.decide(cur)
		if err != nil {
			c.err = err
			continue
		}
		for _, e := range events {
			d, err := r.typ.Encode(e)
			if err != nil {
				r.forget(id) // decided states of earlier commands may share memory with it
				return fmt.Errorf("aggregate: encode: %w", err)
			}
			d.Metadata = c.meta
			data = append(data, d)
			cur.State = r.typ.Evolve(cur.State, e)
			cur.Version++
		}
		c.res = Result[S, E]{Loaded: cur, Events: events}
	}
	if guess {
		for _, c := range batch {
			if c.err != nil {
				return errGuessedWrong // perhaps only because it was not new
			}
		}
		if len(data) == 0 {
			return errGuessedWrong
		}
	}
	if len(data) == 0 {
		return nil
	}
	expected := eventstore.Exact(l.Version)
	if guess {
		expected = eventstore.NoStream
	}
	app, err := r.store.Append(ctx, r.typ.StreamID(id), expected, data...)
	if err != nil {
		// Evolve may have changed the cached state in place: reload next time.
		r.forget(id)
		return err
	}
	for _, c := range batch {
		if c.err == nil && len(c.res.Events) > 0 {
			// The batch's last position: at or after this command's events,
			// which is what read-your-writes needs.
			c.res.Append = app
		}
	}
	if r.snapshotDue(before, cur.Version, snap) {
		// A failed snapshot costs only speed: the events are committed.
		if size, err := r.saveSnapshot(ctx, cur); err == nil {
			snap = snapInfo{version: cur.Version, bytes: size}
		}
	}
	r.remember(cached[S]{Loaded: cur, snap: snap})
	return nil
}

// snapshotBytesPerEvent spaces the snapshots of a large state: at most
// about this many bytes of snapshot are written for each event appended
// (a merchant's account, whose state remembers each transfer it took part
// in, is snapshotted every ~2,000 events at 1 MB rather than every 100).
// Loading such an aggregate cold replays at most as many events.
const snapshotBytesPerEvent = 512

// snapshotDue reports whether an aggregate that went from version before
// to version now is to be snapshotted: now crossed a multiple of
// SnapshotEvery, and enough events followed its last snapshot for that
// snapshot's size.
func (r *Repository[S, E]) snapshotDue(before, now uint64, last snapInfo) bool {
	n := r.typ.SnapshotEvery
	if n == 0 || now/n == before/n {
		return false
	}
	return now-last.version >= uint64(last.bytes/snapshotBytesPerEvent)
}

// SaveSnapshot stores l as the aggregate's snapshot.
func (r *Repository[S, E]) SaveSnapshot(ctx context.Context, l Loaded[S]) error {
	_, err := r.saveSnapshot(ctx, l)
	return err
}

// saveSnapshot stores l as the aggregate's snapshot and returns its size.
func (r *Repository[S, E]) saveSnapshot(ctx context.Context, l Loaded[S]) (int, error) {
	state, err := json.Marshal(l.State)
	if err != nil {
		return 0, fmt.Errorf("aggregate: encode snapshot: %w", err)
	}
	return len(state), r.store.SaveSnapshot(ctx, eventstore.Snapshot{
		StreamID:     r.typ.StreamID(l.ID),
		Version:      l.Version,
		StateVersion: r.typ.StateVersion,
		State:        state,
	})
}
