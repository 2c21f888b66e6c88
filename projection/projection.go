// Package projection keeps CQRS read models up to date from an event
// store's global log.
//
// A Runner follows the log from its checkpoint and hands events to a
// Projection in batches, inside one database transaction that also moves
// the checkpoint. A crash therefore loses or repeats nothing: either the
// batch's effects and the new checkpoint are both committed or neither is,
// and the runner resumes from the committed checkpoint. Rebuild resets the
// read model and replays the log. WaitFor lets a query wait until the read
// model has caught up with a position the client wrote (read-your-writes).
//
// SQL here uses $1-style placeholders, which both PostgreSQL and SQLite
// (modernc.org/sqlite) accept.
package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/backoff"
	"github.com/agora-commerce/agora/internal/platform/tracectx"
)

// Projection turns events into a read model.
type Projection interface {
	// Name identifies the projection's checkpoint; it must be unique per database.
	Name() string
	// Setup creates the read model's tables if they do not exist.
	Setup(ctx context.Context, db *sql.DB) error
	// Apply applies a batch of events (in position order) within tx.
	// Events the projection does not care about are skipped.
	Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error
	// Reset deletes the read model's data within tx, for a rebuild.
	Reset(ctx context.Context, tx *sql.Tx) error
}

// Reactor is a Projection whose effect lies outside the read-model
// database — starting a saga, say — and is idempotent. The runner calls
// React with each batch before it opens the batch's transaction, so that
// transaction (and on SQLite the database's one writer) is held only to
// run Apply and move the checkpoint, not for the effect's duration. A
// Shared runner instead reacts inside the batch's transaction, once it
// has locked the checkpoint and found the batch its own: of the runners
// of several processes, only the one that applies a batch reacts to it
// (PostgreSQL holds no writer for it, only the checkpoint's row). A
// crash between React and the checkpoint's commit runs React again on
// the same events.
type Reactor interface {
	Projection
	React(ctx context.Context, batch []eventstore.Record) error
}

// Options tune a Runner.
type Options struct {
	// BatchSize caps the events per transaction (default 500).
	BatchSize int
	// Logger receives errors and rebuild progress (default slog.Default()).
	Logger *slog.Logger
	// Shared says runners of this projection in other processes may apply
	// batches to the same database (several instances of a service on
	// PostgreSQL). Each batch's transaction then locks the checkpoint row
	// (SELECT … FOR UPDATE, so PostgreSQL only) and applies the batch only
	// if the checkpoint is still where this runner left it; otherwise it
	// applies nothing and resumes from the committed checkpoint. No event
	// is applied twice, whichever runner gets to it first.
	Shared bool
	// SpanAttributes are added to the span of each batch (the platform
	// names the context whose read model it is).
	SpanAttributes []attribute.KeyValue
}

// Runner keeps one Projection up to date. Create it with NewRunner and
// start it with Run.
type Runner struct {
	store eventstore.Store
	db    *sql.DB
	p     Projection
	opts  Options

	// pos holds the last position applied (Head) and wakes WaitFor.
	pos eventstore.Notifier
	// mu serialises batches with Rebuild.
	mu    sync.Mutex
	epoch atomic.Uint64
	// rebuilt is closed (and replaced) by Rebuild to wake Run.
	rebuilt chan struct{}
}

// NewRunner returns a runner applying store's events to p in db.
func NewRunner(store eventstore.Store, db *sql.DB, p Projection, opts Options) *Runner {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Runner{store: store, db: db, p: p, opts: opts, rebuilt: make(chan struct{})}
}

// Name returns the projection's name.
func (r *Runner) Name() string { return r.p.Name() }

const checkpointTable = `CREATE TABLE IF NOT EXISTS projection_checkpoints (
	name     TEXT PRIMARY KEY,
	position BIGINT NOT NULL
)`

// Init creates the checkpoint table and the read model's tables and
// loads the checkpoint. Run calls it; call it earlier to serve queries
// before the runner starts.
func (r *Runner) Init(ctx context.Context) error {
	if _, err := r.db.ExecContext(ctx, checkpointTable); err != nil {
		return fmt.Errorf("projection %s: checkpoint table: %w", r.p.Name(), err)
	}
	if err := r.p.Setup(ctx, r.db); err != nil {
		return fmt.Errorf("projection %s: setup: %w", r.p.Name(), err)
	}
	if r.opts.Shared {
		// The row must exist for the batches' FOR UPDATE to serialise them.
		if _, err := r.db.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0)
			ON CONFLICT (name) DO NOTHING`, r.p.Name()); err != nil {
			return fmt.Errorf("projection %s: checkpoint row: %w", r.p.Name(), err)
		}
	}
	pos, err := r.checkpoint(ctx)
	if err != nil {
		return err
	}
	r.setPos(pos)
	return nil
}

func (r *Runner) checkpoint(ctx context.Context) (uint64, error) {
	var pos int64
	err := r.db.QueryRowContext(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1`, r.p.Name()).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("projection %s: load checkpoint: %w", r.p.Name(), err)
	}
	return uint64(pos), nil
}

func (r *Runner) setPos(p uint64) { r.pos.Publish(p) }

var errRestart = errors.New("projection: restart after rebuild")

// errMoved reports that another runner moved the checkpoint (Shared).
var errMoved = errors.New("projection: the checkpoint moved under this runner")

// Run initialises the runner and follows the log until ctx ends. A failing
// Init or batch is retried with backoff; Run returns only ctx's error.
func (r *Runner) Run(ctx context.Context) error {
	// Init again, and until it succeeds: another instance creating the
	// same tables at the same moment can fail it once (PostgreSQL's
	// CREATE TABLE IF NOT EXISTS is not safe against a concurrent one).
	for attempt := 1; ; attempt++ {
		err := r.Init(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.opts.Logger.Warn("projection init failed; retrying", "projection", r.p.Name(), "err", err)
		if err := backoff.Sleep(ctx, backoff.Delay(100*time.Millisecond, 5*time.Second, attempt)); err != nil {
			return err
		}
	}
	failures := 0
	for {
		r.mu.Lock()
		epoch, rebuilt := r.epoch.Load(), r.rebuilt
		r.mu.Unlock()
		// A rebuild cancels the subscription, which then restarts from 0.
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-rebuilt:
				cancel()
			case <-sctx.Done():
			}
		}()
		err := eventstore.Subscribe(sctx, r.store, r.Position(), r.opts.BatchSize, func(ctx context.Context, batch []eventstore.Record) error {
			if err := r.applyBatch(ctx, epoch, batch); err != nil {
				return err
			}
			failures = 0
			return nil
		})
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errRestart) || isClosed(rebuilt) {
			continue
		}
		if errors.Is(err, errMoved) {
			// Another runner applied these events: go on after them.
			if pos, err := r.checkpoint(ctx); err == nil {
				r.pos.Reset(pos)
			}
			continue
		}
		failures++
		delay := backoff.Delay(100*time.Millisecond, 10*time.Second, failures)
		r.opts.Logger.Error("projection batch failed; retrying", "projection", r.p.Name(), "err", err, "backoff", delay)
		if err := backoff.Sleep(ctx, delay); err != nil {
			return err
		}
		// Resume from what is committed.
		if pos, err := r.checkpoint(ctx); err == nil {
			r.setPos(pos)
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (r *Runner) applyBatch(ctx context.Context, epoch uint64, batch []eventstore.Record) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.epoch.Load() != epoch {
		return errRestart
	}
	last := batch[len(batch)-1].Position
	ctx, span := r.batchSpan(ctx, batch)
	defer func() {
		switch {
		case errors.Is(err, errMoved):
			span.SetAttributes(attribute.Bool("agora.projection.moved", true)) // another runner applied it
		default:
			tracectx.Fail(span, err)
		}
		span.End()
	}()
	re, reacts := r.p.(Reactor)
	react := func() error {
		if err := re.React(ctx, batch); err != nil {
			return fmt.Errorf("projection %s: react up to %d: %w", r.p.Name(), last, err)
		}
		return nil
	}
	if reacts && !r.opts.Shared {
		if err := react(); err != nil {
			return err
		}
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection %s: begin: %w", r.p.Name(), err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if r.opts.Shared {
		var at int64
		if err := tx.QueryRowContext(ctx, `SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, r.p.Name()).Scan(&at); err != nil {
			return fmt.Errorf("projection %s: lock checkpoint: %w", r.p.Name(), err)
		}
		if uint64(at) != r.Position() || batch[0].Position <= uint64(at) {
			return errMoved
		}
		if reacts {
			if err := react(); err != nil {
				return err
			}
		}
	}
	if err := r.p.Apply(ctx, tx, batch); err != nil {
		return fmt.Errorf("projection %s: apply up to %d: %w", r.p.Name(), last, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`, r.p.Name(), int64(last)); err != nil {
		return fmt.Errorf("projection %s: checkpoint: %w", r.p.Name(), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("projection %s: commit: %w", r.p.Name(), err)
	}
	r.setPos(last)
	return nil
}

var tracer = otel.Tracer("github.com/agora-commerce/agora/projection")

// batchSpan starts the span of applying batch: one span per batch, in
// the trace of its first event (the one trace it serves, typically: a
// checkout's order read-model update lands in the checkout's trace),
// linked to the trace context of each event (at most
// tracectx.MaxLinks); none if no event carries a sampled one.
func (r *Runner) batchSpan(ctx context.Context, batch []eventstore.Record) (context.Context, trace.Span) {
	var traces tracectx.Batch
	for i := range batch {
		traces.Add(batch[i].Metadata.TraceParent)
	}
	if traces.Empty() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return traces.Start(ctx, tracer, "projection "+r.p.Name(), trace.WithAttributes(attribute.String("agora.projection", r.p.Name()),
		attribute.Int("agora.events", len(batch)), attribute.Int64("agora.position.from", int64(batch[0].Position)),
		attribute.Int64("agora.position", int64(batch[len(batch)-1].Position)), attribute.Bool("agora.traces.many", !traces.Single())),
		trace.WithAttributes(r.opts.SpanAttributes...))
}

// Position returns the last position applied to the read model.
func (r *Runner) Position() uint64 { return r.pos.Head() }

// Lag returns how many positions the read model is behind the log's head.
func (r *Runner) Lag(ctx context.Context) (uint64, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return 0, err
	}
	if p := r.Position(); head > p {
		return head - p, nil
	}
	return 0, nil
}

// WaitFor blocks until the read model includes position pos, or ctx ends.
func (r *Runner) WaitFor(ctx context.Context, pos uint64) error {
	if pos == 0 {
		return nil
	}
	return r.pos.Wait(ctx, pos-1)
}

// Rebuild empties the read model, moves the checkpoint back to the start
// and, if the runner is running, waits until it has replayed the log up to
// the head as it was when Rebuild began, calling progress (if not nil)
// once the target is known and then about once a second with the position
// reached and the target.
func (r *Runner) Rebuild(ctx context.Context, progress func(pos, target uint64)) error {
	target, err := r.store.Head(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	err = r.reset(ctx)
	if err == nil {
		r.epoch.Add(1)
		r.pos.Reset(0)
		close(r.rebuilt)
		r.rebuilt = make(chan struct{})
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	r.opts.Logger.Info("projection rebuild started", "projection", r.p.Name(), "target", target)
	if progress != nil {
		progress(0, target)
	}
	for r.Position() < target {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		err := r.WaitFor(wctx, target)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progress != nil {
			progress(r.Position(), target)
		}
		if err == nil {
			break
		}
	}
	r.opts.Logger.Info("projection rebuilt", "projection", r.p.Name(), "position", r.Position())
	return nil
}

func (r *Runner) reset(ctx context.Context) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("projection %s: begin reset: %w", r.p.Name(), err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	if err := r.p.Reset(ctx, tx); err != nil {
		return fmt.Errorf("projection %s: reset: %w", r.p.Name(), err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, r.p.Name()); err != nil {
		return fmt.Errorf("projection %s: reset checkpoint: %w", r.p.Name(), err)
	}
	return tx.Commit()
}
