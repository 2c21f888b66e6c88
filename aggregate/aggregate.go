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
	"hash/fnv"
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
	// a multiple of it; 0 disables snapshots.
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
	// stripes serialise commands on the same aggregate within this
	// process, so that local contention queues instead of conflicting;
	// the expected-version check still guards against other processes.
	stripes []sync.Mutex
}

// Option configures a Repository.
type Option func(*options)

type options struct{ retries, stripes int }

// WithRetries sets how many times Handle retries a concurrency conflict
// (default 5).
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithLockStripes sets how many mutex stripes serialise same-aggregate
// commands in this process (default 256; 0 turns local serialisation off).
func WithLockStripes(n int) Option { return func(o *options) { o.stripes = n } }

// NewRepository returns a repository for typ on store.
func NewRepository[S, E any](store eventstore.Store, typ Type[S, E], opts ...Option) *Repository[S, E] {
	o := options{retries: 5, stripes: 256}
	for _, f := range opts {
		f(&o)
	}
	return &Repository[S, E]{store: store, typ: typ, retries: o.retries, stripes: make([]sync.Mutex, o.stripes)}
}

// Type returns the repository's aggregate type.
func (r *Repository[S, E]) Type() Type[S, E] { return r.typ }

// Load returns the aggregate's current state. An aggregate with no events
// loads as Initial() at version 0.
func (r *Repository[S, E]) Load(ctx context.Context, id string) (Loaded[S], error) {
	stream := r.typ.StreamID(id)
	l := Loaded[S]{ID: id, State: r.typ.Initial()}
	if r.typ.SnapshotEvery > 0 {
		snap, ok, err := r.store.LoadSnapshot(ctx, stream)
		if err != nil {
			return l, fmt.Errorf("aggregate: load snapshot of %s: %w", stream, err)
		}
		if ok && snap.StateVersion == r.typ.StateVersion {
			s := r.typ.Initial()
			if err := json.Unmarshal(snap.State, &s); err == nil {
				l.State, l.Version = s, snap.Version
			}
			// A snapshot that does not decode is ignored: replay is always correct.
		}
	}
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
func (r *Repository[S, E]) Handle(ctx context.Context, id string, meta eventstore.Metadata, decide Decide[S, E]) (Result[S, E], error) {
	if len(r.stripes) > 0 {
		h := fnv.New32a()
		h.Write([]byte(id))
		mu := &r.stripes[h.Sum32()%uint32(len(r.stripes))]
		mu.Lock()
		defer mu.Unlock()
	}
	for attempt := 0; ; attempt++ {
		res, err := r.handleOnce(ctx, id, meta, decide)
		if err == nil || !errors.Is(err, eventstore.ErrConcurrency) || attempt >= r.retries {
			return res, err
		}
		// Back off a little, with jitter, so contending writers spread out.
		if err := backoff.Sleep(ctx, backoff.Delay(time.Millisecond, 32*time.Millisecond, attempt+1)); err != nil {
			return res, err
		}
	}
}

func (r *Repository[S, E]) handleOnce(ctx context.Context, id string, meta eventstore.Metadata, decide Decide[S, E]) (Result[S, E], error) {
	l, err := r.Load(ctx, id)
	if err != nil {
		return Result[S, E]{Loaded: l}, err
	}
	events, err := decide(l)
	if err != nil || len(events) == 0 {
		return Result[S, E]{Loaded: l}, err
	}
	data := make([]eventstore.EventData, len(events))
	for i, e := range events {
		d, err := r.typ.Encode(e)
		if err != nil {
			return Result[S, E]{Loaded: l}, fmt.Errorf("aggregate: encode: %w", err)
		}
		d.Metadata = meta
		data[i] = d
	}
	stream := r.typ.StreamID(id)
	app, err := r.store.Append(ctx, stream, eventstore.Exact(l.Version), data...)
	if err != nil {
		return Result[S, E]{Loaded: l}, err
	}
	before := l.Version
	for _, e := range events {
		l.State = r.typ.Evolve(l.State, e)
	}
	l.Version = app.NextExpectedVersion
	if n := r.typ.SnapshotEvery; n > 0 && l.Version/n > before/n {
		// A failed snapshot costs only speed: the events are committed.
		_ = r.SaveSnapshot(ctx, l)
	}
	return Result[S, E]{Loaded: l, Events: events, Append: app}, nil
}

// SaveSnapshot stores l as the aggregate's snapshot.
func (r *Repository[S, E]) SaveSnapshot(ctx context.Context, l Loaded[S]) error {
	state, err := json.Marshal(l.State)
	if err != nil {
		return fmt.Errorf("aggregate: encode snapshot: %w", err)
	}
	return r.store.SaveSnapshot(ctx, eventstore.Snapshot{
		StreamID:     r.typ.StreamID(l.ID),
		Version:      l.Version,
		StateVersion: r.typ.StateVersion,
		State:        state,
	})
}
