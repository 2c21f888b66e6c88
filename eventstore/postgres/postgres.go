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
// One writer goroutine per Store takes queued appends, locks their stream
// rows (in stream-ID order, before the positions row: one lock order for
// every process), checks expected versions and idempotency in Go, and
// writes all accepted events with a few pipelined statements and one
// commit. A failed check fails only its append. If the transaction itself
// fails (say a duplicate event ID raced in from another process) the batch
// is retried one append per transaction, so only the culprit fails.
// synchronous_commit stays on: an append returns only once durable.
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
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/agora-commerce/agora/eventstore"
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
}

type request struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData
	res      eventstore.AppendResult
	err      error
	done     chan struct{}
}

var _ eventstore.Store = (*Store)(nil)

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
	if opts.Schema != "" {
		if err := createSchema(ctx, url, opts.Schema); err != nil {
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

func createSchema(ctx context.Context, url, schema string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil && !isUniqueViolation(err) {
		return fmt.Errorf("postgres: create schema: %w", err)
	}
	return nil
}

// DropSchema drops schema and everything in it (for tests and benchmarks).
func DropSchema(ctx context.Context, url, schema string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	return err
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
	select {
	case <-s.quit:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	default:
	}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-ctx.Done():
		// The append may still commit; a retry with the same IDs is idempotent.
		return eventstore.AppendResult{}, ctx.Err()
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
	defer conn.Release()
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
	fill:
		for n < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += len(r.events)
			default:
				break fill
			}
		}
		s.commit(conn.Conn(), batch, n)
	}
}

func (s *Store) commit(conn *pgx.Conn, batch []*request, events int) {
	ctx := context.Background()
	start := time.Now()
	head, err := s.write(ctx, conn, batch)
	if err != nil && len(batch) > 1 {
		// Something failed the whole transaction: isolate the culprit by
		// writing each append on its own.
		for _, r := range batch {
			r.err, r.res = nil, eventstore.AppendResult{}
			h, err := s.write(ctx, conn, []*request{r})
			if err != nil && r.err == nil {
				r.err = err
			}
			head = max(head, h)
		}
	} else if err != nil && batch[0].err == nil {
		batch[0].err = err
	}
	if head > 0 {
		s.opts.Observer.Committed(len(batch), events, time.Since(start))
		s.notifier.Publish(head)
	}
	for _, r := range batch {
		close(r.done)
	}
}

// write commits batch in one transaction and returns the new head (0 if
// nothing was written). Requests that fail their own checks get r.err; a
// returned error means the transaction failed and nothing was written.
func (s *Store) write(ctx context.Context, conn *pgx.Conn, batch []*request) (uint64, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		head, err := s.writeOnce(ctx, conn, batch)
		if err == nil {
			return head, nil
		}
		lastErr = err
		for _, r := range batch {
			r.err, r.res = nil, eventstore.AppendResult{}
		}
		if !retryable(err) {
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

func (s *Store) writeOnce(ctx context.Context, conn *pgx.Conn, batch []*request) (head uint64, err error) {
	streams := make([]string, 0, len(batch))
	firstIDs := make([]uuid.UUID, 0, len(batch))
	for _, r := range batch {
		streams = append(streams, r.stream)
		firstIDs = append(firstIDs, r.events[0].ID)
	}
	slices.Sort(streams)
	streams = slices.Compact(streams)

	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback(ctx) //nolint:errcheck // reporting the first error
		}
	}()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO streams (stream_id, version) SELECT unnest($1::text[]), 0 ON CONFLICT DO NOTHING`, streams)
	b.Queue(`SELECT stream_id, version FROM streams WHERE stream_id = ANY($1::text[]) ORDER BY stream_id FOR UPDATE`, streams)
	b.Queue(`SELECT event_id, stream_id, version, position FROM events WHERE event_id = ANY($1::uuid[])`, firstIDs)
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return 0, err
	}
	versions := make(map[string]int64, len(streams))
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return 0, err
	}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			br.Close()
			return 0, err
		}
		versions[id] = v
	}
	if err := rows.Err(); err != nil {
		br.Close()
		return 0, err
	}
	existing := make(map[uuid.UUID]stored)
	rows, err = br.Query()
	if err != nil {
		br.Close()
		return 0, err
	}
	for rows.Next() {
		var id uuid.UUID
		var st stored
		if err := rows.Scan(&id, &st.stream, &st.version, &st.position); err != nil {
			rows.Close()
			br.Close()
			return 0, err
		}
		existing[id] = st
	}
	if err := rows.Err(); err != nil {
		br.Close()
		return 0, err
	}
	if err := br.Close(); err != nil {
		return 0, err
	}

	// Decide each append in arrival order.
	var (
		evStream  []string
		evVersion []int64
		evID      []uuid.UUID
		evType    []string
		evSchema  []int32
		evData    []string
		evMeta    []*string
		accepted  []*request
		changed   = map[string]int64{}
		offset    int64
	)
	for _, r := range batch {
		if st, ok := existing[r.events[0].ID]; ok {
			res, err := sameAppend(ctx, tx, r, st)
			if err != nil {
				if errors.Is(err, eventstore.ErrDuplicateEvent) {
					r.err = err
					continue
				}
				return 0, err
			}
			r.res = res
			continue
		}
		cur := versions[r.stream]
		if !r.expected.Check(uint64(cur)) {
			r.err = &eventstore.ConcurrencyError{StreamID: r.stream, Expected: r.expected, Actual: uint64(cur)}
			continue
		}
		for i, e := range r.events {
			evStream = append(evStream, r.stream)
			evVersion = append(evVersion, cur+int64(i)+1)
			evID = append(evID, e.ID)
			evType = append(evType, e.Type)
			evSchema = append(evSchema, int32(e.SchemaVersion))
			evData = append(evData, string(e.Data))
			if e.Metadata != (eventstore.Metadata{}) {
				m, _ := json.Marshal(e.Metadata)
				ms := string(m)
				evMeta = append(evMeta, &ms)
			} else {
				evMeta = append(evMeta, nil)
			}
		}
		n := int64(len(r.events))
		// Positions are relative until the positions row is read.
		r.res = eventstore.AppendResult{FirstPosition: uint64(offset + 1), LastPosition: uint64(offset + n), NextExpectedVersion: uint64(cur + n)}
		offset += n
		versions[r.stream] = cur + n
		changed[r.stream] = cur + n
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return 0, tx.Commit(ctx)
	}
	chStreams := make([]string, 0, len(changed))
	chVersions := make([]int64, 0, len(changed))
	for id, v := range changed {
		chStreams = append(chStreams, id)
		chVersions = append(chVersions, v)
	}
	b = &pgx.Batch{}
	b.Queue(`UPDATE positions SET last = last + $1 WHERE id = 1 RETURNING last`, offset)
	b.Queue(`INSERT INTO events (position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at)
		SELECT p.last - $1 + t.ord, t.stream_id, t.version, t.event_id, t.type, t.schema_version, t.data::json, t.metadata::json, now()
		FROM positions p,
		     unnest($2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[])
		     WITH ORDINALITY AS t(stream_id, version, event_id, type, schema_version, data, metadata, ord)
		WHERE p.id = 1`, offset, evStream, evVersion, evID, evType, evSchema, evData, evMeta)
	b.Queue(`UPDATE streams s SET version = t.version FROM unnest($1::text[], $2::bigint[]) AS t(stream_id, version) WHERE s.stream_id = t.stream_id`, chStreams, chVersions)
	b.Queue(`SELECT pg_notify($1, last::text) FROM positions WHERE id = 1`, s.channel)
	br = tx.SendBatch(ctx, b)
	var last int64
	if err := br.QueryRow().Scan(&last); err != nil {
		br.Close()
		return 0, err
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	base := uint64(last - offset)
	for _, r := range accepted {
		r.res.FirstPosition += base
		r.res.LastPosition += base
	}
	return uint64(last), nil
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
