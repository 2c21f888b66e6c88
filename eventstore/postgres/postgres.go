// Package postgres is the distributed eventstore.Store, on PostgreSQL
// through pgx v5.
//
// # Gap-free global order
//
// Positions do not come from a sequence: sequences hand out numbers at
// insert time but transactions commit in another order, so a reader that
// asks for "position > checkpoint" could pass over a position whose
// transaction commits a moment later, and lose it forever. Instead every
// write transaction takes its positions from the single row of the
// positions table (UPDATE positions SET last = last + n RETURNING last)
// and so holds that row's lock until it commits. PostgreSQL makes a
// transaction's commit visible before it releases its locks, so the next
// writer can only allocate positions after the previous writer's events
// are visible to every new snapshot. Hence positions are contiguous, they
// become visible in position order, and a reader that has seen position p
// has seen every position below p: "position > checkpoint" never skips an
// event. The same argument holds across processes sharing the database.
// The serialisation costs nothing extra because each process already
// group-commits: one transaction carries every append that queued while
// the previous one was committing.
//
// # Writes
//
// One writer goroutine per Store takes the appends queued while the
// previous commit was in flight and writes them as one transaction in a
// single pipelined round trip: BEGIN, take positions, insert every event
// (one statement over arrays), pg_notify, COMMIT. Expected versions are
// checked in Go against a cache of stream versions; the unique
// (stream_id, version) and event_id indexes are the authority. A cached
// version can only be stale by being too low (versions only grow), so a
// stale check makes the insert collide and the transaction fail; the
// batch then falls back to the checked path, one append per transaction,
// which reads the stream's version and the first event ID from the
// database: a repeat of a stored append returns the original result, a
// failed condition a *ConcurrencyError, and one append's failure never
// fails another's. Appends whose condition fails against the cache take
// the checked path too. synchronous_commit stays on: an append returns
// only once it is durable.
//
// # Waking readers
//
// Each commit sends pg_notify with the new head; every Store LISTENs on a
// dedicated connection and wakes its subscribers. A slow poll of the head
// (and one after every reconnect) bounds the delay if a notification is
// ever lost; there is no tight polling.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bounded"
	"github.com/agora-commerce/agora/internal/groupcommit"
	"github.com/agora-commerce/agora/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure a Store.
type Options struct {
	// Schema, if set, is created if missing and used for every table
	// (through search_path); tests and benchmarks use it for isolation.
	Schema string
	// MaxBatch caps how many events one group commit carries (default
	// 4096). MaxBatch 1 disables group commit: one transaction per append.
	MaxBatch int
	// MaxConns sizes the connection pool (default 8).
	MaxConns int32
	// PollInterval is the safety poll of the head for subscribers, in case
	// a notification is lost (default 2s).
	PollInterval time.Duration
	// Observer receives commit measurements.
	Observer eventstore.Observer
	// Logger receives listener errors (default slog.Default()).
	Logger *slog.Logger
}

// Store is the PostgreSQL event store. Create it with Open.
type Store struct {
	pool     *pgxpool.Pool
	opts     Options
	channel  string
	connCfg  *pgx.ConnConfig
	reqs     chan *request
	quit     chan struct{}
	done     sync.WaitGroup
	once     sync.Once
	notifier eventstore.Notifier
	// inFlight counts callers inside Append, for the writer's linger.
	inFlight atomic.Int64
}

type request struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData
	res      eventstore.AppendResult
	err      error
	done     chan struct{}
	// commit describes the commit that carried the append (for its span).
	commit groupcommit.Stats
}

var _ eventstore.Store = (*Store)(nil)

// Size implements groupcommit.Request.
func (r *request) Size() int { return len(r.events) }

// Open connects to the database at url, applies migrations and starts the
// writer and the listener.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Observer == nil {
		opts.Observer = eventstore.NopObserver{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse URL: %w", err)
	}
	cfg.MaxConns = opts.MaxConns
	// Connections a burst opened go back within a minute: a platform of
	// many stores does not hold every pool at its peak.
	cfg.MaxConnIdleTime, cfg.HealthCheckPeriod = 30*time.Second, 15*time.Second
	guard(&cfg.ConnConfig.Config)
	if opts.Schema != "" {
		if err := CreateSchema(ctx, url, opts.Schema); err != nil {
			return nil, err
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	// Durability is not negotiable: never inherit an off setting.
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, opts: opts, connCfg: cfg.ConnConfig.Copy(), reqs: make(chan *request, 8192), quit: make(chan struct{})}
	s.channel = "agora_events"
	if opts.Schema != "" {
		h := fnv.New64a()
		h.Write([]byte(opts.Schema))
		s.channel += "_" + strconv.FormatUint(h.Sum64(), 36)
	}
	db := stdlib.OpenDBFromPool(pool)
	err = sqlmigrate.Apply(ctx, db, migrations, "migrations", "eventstore_migrations", "SELECT pg_advisory_xact_lock(7262051)")
	db.Close()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	head, err := s.Head(ctx)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.notifier.Publish(head)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: writer connection: %w", err)
	}
	s.done.Add(2)
	go s.writer(conn)
	go s.listen()
	return s, nil
}

// CreateSchema creates schema on url's database unless it exists (a user
// who may not create schemas may still open one made for it).
func CreateSchema(ctx context.Context, url, schema string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: look for schema: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil && !isUniqueViolation(err) {
		return fmt.Errorf("postgres: create schema: %w", err)
	}
	return nil
}

// DropSchema drops schema and everything in it, and the schemas named
// after it (<schema>_<anything>: a platform's per-context schemas), for
// tests and benchmarks.
func DropSchema(ctx context.Context, url, schema string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname = $1 OR starts_with(nspname, $1 || '_')`, schema)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			return err
		}
	}
	return nil
}

// Pool returns the store's connection pool, for read models that live in
// the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	evs := append([]eventstore.EventData(nil), events...)
	if err := eventstore.Prepare(streamID, evs); err != nil {
		return eventstore.AppendResult{}, err
	}
	req := &request{stream: streamID, expected: expected, events: evs, done: make(chan struct{})}
	ctx, span := groupcommit.StartAppend(ctx, "postgresql", streamID, len(evs))
	if err := s.submit(ctx, req); err != nil {
		span.End(eventstore.AppendResult{}, err, nil)
		return eventstore.AppendResult{}, err
	}
	span.End(req.res, req.err, &req.commit)
	return req.res, req.err
}

// submit queues req for the writer and waits for it to be done.
func (s *Store) submit(ctx context.Context, req *request) error {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	select {
	case <-s.quit:
		return eventstore.ErrClosed
	default:
	}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return eventstore.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		// The append may still commit; a retry with the same IDs is idempotent.
		return ctx.Err()
	}
}

const selectCols = `position, stream_id, version, event_id, type, schema_version, data::text, metadata::text, recorded_at`

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, streamID string, r eventstore.StreamRead) ([]eventstore.Record, error) {
	limit := r.Limit
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	var rows pgx.Rows
	var err error
	if r.Direction == eventstore.Backward {
		from := int64(r.From)
		if r.From == 0 {
			from = 1<<63 - 1
		}
		rows, err = s.pool.Query(ctx, `SELECT `+selectCols+` FROM events WHERE stream_id = $1 AND version <= $2 ORDER BY version DESC LIMIT $3`, streamID, from, limit)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+selectCols+` FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`, streamID, int64(r.From), limit)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read stream %s: %w", streamID, err)
	}
	return scanRecords(rows, limit)
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Record, error) {
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+selectCols+` FROM events WHERE position > $1 ORDER BY position LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: read all: %w", err)
	}
	return scanRecords(rows, limit)
}

func scanRecords(rows pgx.Rows, capHint int) ([]eventstore.Record, error) {
	defer rows.Close()
	recs := make([]eventstore.Record, 0, min(capHint, 256))
	for rows.Next() {
		var (
			r        eventstore.Record
			pos, ver int64
			data     string
			meta     *string
		)
		if err := rows.Scan(&pos, &r.StreamID, &ver, &r.ID, &r.Type, &r.SchemaVersion, &data, &meta, &r.RecordedAt); err != nil {
			return nil, fmt.Errorf("postgres: scan: %w", err)
		}
		r.Position, r.Version = uint64(pos), uint64(ver)
		r.Data = json.RawMessage(data)
		if meta != nil {
			if err := json.Unmarshal([]byte(*meta), &r.Metadata); err != nil {
				return nil, fmt.Errorf("postgres: metadata at %d: %w", pos, err)
			}
		}
		r.RecordedAt = r.RecordedAt.UTC()
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read: %w", err)
	}
	return recs, nil
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT last FROM positions WHERE id = 1`).Scan(&head); err != nil {
		return 0, fmt.Errorf("postgres: head: %w", err)
	}
	return uint64(head), nil
}

// WaitForAppend implements eventstore.Store.
func (s *Store) WaitForAppend(ctx context.Context, after uint64) error {
	return s.notifier.Wait(ctx, after)
}

// SaveSnapshot implements eventstore.Store.
func (s *Store) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	if snap.StreamID == "" || !json.Valid(snap.State) {
		return fmt.Errorf("%w: snapshot needs a stream ID and JSON state", eventstore.ErrInvalidEvent)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO snapshots (stream_id, version, state_version, state) VALUES ($1, $2, $3, $4::json)
		ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state_version = excluded.state_version, state = excluded.state
		WHERE excluded.version >= snapshots.version`, snap.StreamID, int64(snap.Version), snap.StateVersion, string(snap.State))
	if err != nil {
		return fmt.Errorf("postgres: save snapshot: %w", err)
	}
	return nil
}

// LoadSnapshot implements eventstore.Store.
func (s *Store) LoadSnapshot(ctx context.Context, streamID string) (eventstore.Snapshot, bool, error) {
	snap := eventstore.Snapshot{StreamID: streamID}
	var ver int64
	var state string
	err := s.pool.QueryRow(ctx, `SELECT version, state_version, state::text FROM snapshots WHERE stream_id = $1`, streamID).Scan(&ver, &snap.StateVersion, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("postgres: load snapshot: %w", err)
	}
	snap.Version, snap.State = uint64(ver), json.RawMessage(state)
	return snap, true, nil
}

// Ping implements eventstore.Store.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.quit:
		return eventstore.ErrClosed
	default:
	}
	return s.pool.Ping(ctx)
}

// Close stops the writer and the listener, failing queued appends with
// ErrClosed, and closes the pool.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.quit)
		s.done.Wait()
		s.pool.Close()
	})
	return nil
}

func (s *Store) writer(conn *pgxpool.Conn) {
	defer s.done.Done()
	w := &writer{s: s, pooled: conn, conn: conn.Conn(), versions: bounded.New[string, int64](maxCachedStreams)}
	defer func() {
		if w.pooled != nil {
			w.pooled.Release()
		}
	}()
	batch := make([]*request, 0, 256)
	for {
		batch = batch[:0]
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.quit:
			for {
				select {
				case r := <-s.reqs:
					r.err = eventstore.ErrClosed
					close(r.done)
				default:
					return
				}
			}
		}
		n := len(batch[0].events)
		batch, n = groupcommit.Collect(s.reqs, batch, n, s.opts.MaxBatch, s.inFlight.Load)
		w.commit(batch, n)
	}
}

// writer is the state of the writer goroutine.
type writer struct {
	s      *Store
	pooled *pgxpool.Conn
	conn   *pgx.Conn
	// versions caches stream versions. It may be stale when another
	// process appends to the same stream; that is always caught: a stale
	// version is lower than the real one, so inserting the next version
	// collides with the unique (stream_id, version) index and the batch
	// falls back to the checked path. It holds the streams appended to
	// most recently, at most maxCachedStreams; a stream it forgot is read
	// again with the next batch's missing versions.
	versions *bounded.Map[string, int64]
}

// maxCachedStreams bounds the writer's stream-version cache (about 100
// bytes a stream).
const maxCachedStreams = 1 << 14

// commitTimeout bounds one group commit: a batch that cannot commit in
// it fails (its appends' outcome unknown to their callers) and the next
// one starts on a fresh connection.
const commitTimeout = 20 * time.Second

// reconnect replaces the writer's connection once it has closed (its
// server went away, or a read timed out).
func (w *writer) reconnect(ctx context.Context) error {
	if w.conn != nil && !w.conn.IsClosed() {
		return nil
	}
	if w.pooled != nil {
		w.pooled.Release() // the pool drops a closed connection
	}
	c, err := w.s.pool.Acquire(ctx)
	if err != nil {
		// None for now: the next batch tries again.
		w.pooled, w.conn = nil, nil
		return fmt.Errorf("postgres: writer connection: %w", err)
	}
	w.pooled, w.conn = c, c.Conn()
	w.versions.Clear()
	return nil
}

func (w *writer) commit(batch []*request, events int) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	start := time.Now()
	if err := w.reconnect(ctx); err != nil {
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
		return
	}
	head, slow := w.fast(ctx, batch)
	for _, r := range slow {
		h, err := w.checked(ctx, r)
		if err != nil && r.err == nil {
			r.err = err
		}
		head = max(head, h)
	}
	if head > 0 {
		w.s.opts.Observer.Committed(len(batch), events, time.Since(start))
		w.s.notifier.Publish(head)
	}
	took := time.Since(start)
	for _, r := range batch {
		r.commit.Set(len(batch), events, start, took)
		close(r.done)
	}
}

// rows are the columns of events to insert, one slice per column.
type rows struct {
	stream  []string
	version []int64
	id      []uuid.UUID
	typ     []string
	schema  []int32
	data    []string
	meta    []*string
}

func (rs *rows) add(r *request, cur int64) {
	for i, e := range r.events {
		rs.stream = append(rs.stream, r.stream)
		rs.version = append(rs.version, cur+int64(i)+1)
		rs.id = append(rs.id, e.ID)
		rs.typ = append(rs.typ, e.Type)
		rs.schema = append(rs.schema, int32(e.SchemaVersion))
		rs.data = append(rs.data, string(e.Data))
		if e.Metadata != (eventstore.Metadata{}) {
			m, _ := json.Marshal(e.Metadata)
			ms := string(m)
			rs.meta = append(rs.meta, &ms)
		} else {
			rs.meta = append(rs.meta, nil)
		}
	}
}

// The write pipeline: positions are taken from the counter row (whose lock
// orders commits, see the package doc) and the events inserted, the
// subscribers notified and the transaction committed, in one round trip.
const (
	takePositions = `UPDATE positions SET last = last + $1 WHERE id = 1 RETURNING last`
	insertEvents  = `INSERT INTO events (position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
		SELECT p.last - $1 + t.ord, t.stream_id, t.version, t.event_id, t.type, t.schema_version, t.data::json, t.metadata::json, now()
		FROM positions p,
		     unnest($2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[])
		     WITH ORDINALITY AS t(stream_id, version, event_id, type, schema_version, data, metadata, ord)
		WHERE p.id = 1`
	notifyHead = `SELECT pg_notify($1, last::text) FROM positions WHERE id = 1`
)

// insert runs the write pipeline inside an explicit transaction and
// returns the new head.
func (w *writer) insert(ctx context.Context, rs *rows) (uint64, error) {
	n := int64(len(rs.id))
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(takePositions, n)
	b.Queue(insertEvents, n, rs.stream, rs.version, rs.id, rs.typ, rs.schema, rs.data, rs.meta)
	b.Queue(notifyHead, w.s.channel)
	b.Queue(`COMMIT`)
	br := w.conn.SendBatch(ctx, b)
	var last int64
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&last)
	}
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The transaction is aborted (or was never begun); end it.
		_, _ = w.conn.Exec(ctx, `ROLLBACK`)
		return 0, err
	}
	return uint64(last), nil
}

// fast writes, in one transaction, every append of batch whose expected
// version holds against the cached stream versions. It returns the new
// head and the appends left for the checked path: those whose condition
// failed against the cache (perhaps stale, perhaps a retry of an append
// already stored), or all of them if the transaction failed.
func (w *writer) fast(ctx context.Context, batch []*request) (uint64, []*request) {
	if err := w.load(ctx, batch); err != nil {
		return 0, batch
	}
	var (
		rs       rows
		accepted []*request
		slow     []*request
		next     = make(map[string]int64)
		offset   int64
	)
	for _, r := range batch {
		cur, ok := next[r.stream]
		if !ok {
			// A stream the cache forgot since load reads as 0: the
			// unique index catches a wrong guess, as it does a stale one.
			cur, _ = w.versions.Get(r.stream)
		}
		if !r.expected.Check(uint64(cur)) {
			slow = append(slow, r)
			continue
		}
		rs.add(r, cur)
		n := int64(len(r.events))
		r.res = eventstore.AppendResult{FirstPosition: uint64(offset + 1), LastPosition: uint64(offset + n), NextExpectedVersion: uint64(cur + n)}
		offset += n
		next[r.stream] = cur + n
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return 0, slow
	}
	last, err := w.insert(ctx, &rs)
	if err != nil {
		// A stale cached version, a repeated event ID, or a broken
		// connection: forget what we believed and check each append.
		for _, r := range batch {
			w.versions.Delete(r.stream)
			r.res = eventstore.AppendResult{}
		}
		return 0, batch
	}
	base := uint64(last) - uint64(offset)
	for _, r := range accepted {
		r.res.FirstPosition += base
		r.res.LastPosition += base
	}
	for id, v := range next {
		w.versions.Put(id, v)
	}
	return last, slow
}

// load reads the versions of the batch's streams that are not cached.
func (w *writer) load(ctx context.Context, batch []*request) error {
	var missing []string
	seen := make(map[string]bool)
	for _, r := range batch {
		if _, ok := w.versions.Peek(r.stream); !ok && !seen[r.stream] {
			seen[r.stream] = true
			missing = append(missing, r.stream)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := w.conn.Query(ctx, `SELECT s, COALESCE((SELECT max(version) FROM events WHERE stream_id = s), 0) FROM unnest($1::text[]) AS s`, missing)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		w.versions.Put(id, v)
	}
	return rows.Err()
}

// checked writes one append in its own transaction with authoritative
// checks: a repeat of an append already stored returns its result, a
// failed condition a *ConcurrencyError. A race with another process on the
// same stream is retried.
func (w *writer) checked(ctx context.Context, r *request) (uint64, error) {
	w.versions.Delete(r.stream)
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		r.err, r.res = nil, eventstore.AppendResult{}
		var st stored
		err := w.conn.QueryRow(ctx, `SELECT stream_id, version, position FROM events WHERE event_id = $1`, r.events[0].ID).Scan(&st.stream, &st.version, &st.position)
		switch {
		case err == nil:
			tx, err := w.conn.Begin(ctx)
			if err != nil {
				return 0, fmt.Errorf("postgres: append: %w", err)
			}
			res, err := sameAppend(ctx, tx, r, st)
			tx.Rollback(ctx) //nolint:errcheck // read-only
			if err != nil {
				if errors.Is(err, eventstore.ErrDuplicateEvent) {
					r.err = err
					return 0, nil
				}
				return 0, fmt.Errorf("postgres: append: %w", err)
			}
			r.res = res
			return 0, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return 0, fmt.Errorf("postgres: append: %w", err)
		}
		var cur int64
		if err := w.conn.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM events WHERE stream_id = $1`, r.stream).Scan(&cur); err != nil {
			return 0, fmt.Errorf("postgres: append: %w", err)
		}
		if !r.expected.Check(uint64(cur)) {
			r.err = &eventstore.ConcurrencyError{StreamID: r.stream, Expected: r.expected, Actual: uint64(cur)}
			w.versions.Put(r.stream, cur)
			return 0, nil
		}
		var rs rows
		rs.add(r, cur)
		last, err := w.insert(ctx, &rs)
		if err == nil {
			n := int64(len(r.events))
			r.res = eventstore.AppendResult{FirstPosition: uint64(last) - uint64(n) + 1, LastPosition: uint64(last), NextExpectedVersion: uint64(cur + n)}
			w.versions.Put(r.stream, cur+n)
			return last, nil
		}
		lastErr = err
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "events_event_id_key" {
			// An ID of this append (not its first) is stored already.
			r.err = fmt.Errorf("%w: %s", eventstore.ErrDuplicateEvent, pe.Detail)
			return 0, nil
		}
		if !retryable(err) && !isUniqueViolation(err) {
			break
		}
	}
	return 0, fmt.Errorf("postgres: append: %w", lastErr)
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

type stored struct {
	stream   string
	version  int64
	position int64
}

// sameAppend checks that r repeats the append stored from st onwards and
// returns that append's result.
func sameAppend(ctx context.Context, tx pgx.Tx, r *request, st stored) (eventstore.AppendResult, error) {
	if st.stream != r.stream {
		return eventstore.AppendResult{}, fmt.Errorf("%w: %s is already in stream %q", eventstore.ErrDuplicateEvent, r.events[0].ID, st.stream)
	}
	rows, err := tx.Query(ctx, `SELECT event_id, position, version FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`, r.stream, st.version, len(r.events))
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	defer rows.Close()
	var res eventstore.AppendResult
	i := 0
	for ; rows.Next(); i++ {
		var id uuid.UUID
		var pos, ver int64
		if err := rows.Scan(&id, &pos, &ver); err != nil {
			return eventstore.AppendResult{}, err
		}
		if id != r.events[i].ID {
			return eventstore.AppendResult{}, fmt.Errorf("%w: append repeats %s but not the events stored after it", eventstore.ErrDuplicateEvent, r.events[0].ID)
		}
		if i == 0 {
			res.FirstPosition = uint64(pos)
		}
		res.LastPosition, res.NextExpectedVersion = uint64(pos), uint64(ver)
	}
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if i != len(r.events) {
		return eventstore.AppendResult{}, fmt.Errorf("%w: append repeats %s but carries more events than were stored", eventstore.ErrDuplicateEvent, r.events[0].ID)
	}
	return res, nil
}

// listen follows the notification channel on its own connection,
// reconnecting with backoff, and polls the head slowly as a safety net.
func (s *Store) listen() {
	defer s.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.quit
		cancel()
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("postgres: event listener lost its connection; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	// Anything committed while we were not listening.
	if head, err := s.Head(ctx); err == nil {
		s.notifier.Publish(head)
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, s.opts.PollInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if pos, perr := strconv.ParseUint(n.Payload, 10, 64); perr == nil {
				s.notifier.Publish(pos)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// The safety poll.
			if head, err := s.Head(ctx); err == nil {
				s.notifier.Publish(head)
			}
			if conn.IsClosed() {
				return errors.New("listener connection closed")
			}
		default:
			return err
		}
	}
}

// WithSearchPath returns the connection URL url with its search_path set
// to schema: a database/sql ("pgx") connection to the same schema as the
// store's, for the read models beside it.
func WithSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}
