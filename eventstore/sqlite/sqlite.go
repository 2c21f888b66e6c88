// Package sqlite is the embedded eventstore.Store, on SQLite through
// modernc.org/sqlite (pure Go, no cgo).
//
// The database runs in WAL mode with synchronous=FULL, so an append is
// acknowledged only after its commit is fsynced. One writer goroutine owns
// the only write connection and group-commits: appends that arrive while a
// commit is in flight are queued and written together in the next
// transaction, where one append's conflict does not fail the others (a
// failed SQLite statement undoes only itself). Reads use a separate pool of
// read-only connections, which WAL lets run alongside the writer. The
// stream index is written behind the log (streamindex.go explains why and
// how). One process owns a store file at a time (a lock file enforces it).
package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bounded"
	"github.com/agora-commerce/agora/internal/groupcommit"
	"github.com/agora-commerce/agora/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configure a Store.
type Options struct {
	// MaxBatch caps how many events one group commit carries (default
	// 2048). MaxBatch 1 disables group commit: one transaction per append.
	MaxBatch int
	// ReadConns is the size of the read pool (default 4).
	ReadConns int
	// Observer receives commit measurements (default: none).
	Observer eventstore.Observer
}

// Store is the SQLite event store. Create it with Open.
type Store struct {
	w, r     *sql.DB
	ckpt     *sql.DB
	ckptDone chan struct{}
	opts     Options
	reqs     chan *appendReq
	quit     chan struct{}
	done     chan struct{}
	closeMu  sync.Once
	notifier eventstore.Notifier
	mem      *memtable
	recent   *recent
	unlock   func()
	// inFlight counts callers inside submit, for the writer's linger.
	inFlight atomic.Int64
	// streamStmts are the prepared stream reads (forward, backward).
	stmtMu      sync.Mutex
	streamStmts [2]*sql.Stmt
}

type appendReq struct {
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData
	snap     *eventstore.Snapshot
	res      eventstore.AppendResult
	err      error
	done     chan struct{}
	// wrote is set when this append's events were inserted (not a repeat).
	wrote bool
	// commit describes the commit that carried the append (for its span).
	commit groupcommit.Stats
}

var _ eventstore.Store = (*Store)(nil)

// Open opens (creating if needed) the event store in the SQLite file at
// path and applies its migrations.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 2048
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.Observer == nil {
		opts.Observer = eventstore.NopObserver{}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	unlock, err := lockFile(abs + ".lock")
	if err != nil {
		return nil, err
	}
	w, err := openDB(abs, false)
	if err != nil {
		unlock()
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := sqlmigrate.Apply(ctx, w, migrations, "migrations", "eventstore_migrations", ""); err != nil {
		w.Close()
		unlock()
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	mem := newMemtable()
	if err := recoverIndex(ctx, w, mem); err != nil {
		w.Close()
		unlock()
		return nil, err
	}
	r, err := openDB(abs, true)
	if err != nil {
		w.Close()
		unlock()
		return nil, err
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	r.SetConnMaxIdleTime(0)
	ckpt, err := openDB(abs, false)
	if err != nil {
		w.Close()
		r.Close()
		unlock()
		return nil, err
	}
	ckpt.SetMaxOpenConns(1)
	if _, err := ckpt.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, checkpointCacheKiB)); err != nil {
		w.Close()
		r.Close()
		ckpt.Close()
		unlock()
		return nil, fmt.Errorf("sqlite: checkpointer pragmas: %w", err)
	}
	s := &Store{w: w, r: r, ckpt: ckpt, opts: opts, reqs: make(chan *appendReq, 4096), quit: make(chan struct{}), done: make(chan struct{}), ckptDone: make(chan struct{}), mem: mem, recent: newRecent(recentRecords), unlock: unlock}
	head, err := s.Head(ctx)
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	s.notifier.Publish(head)
	wr, err := newWriter(ctx, s)
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	go wr.run()
	go s.checkpointer()
	return s, nil
}

// DSN returns the database/sql data source name the store uses for path:
// WAL, synchronous=FULL, a busy timeout and foreign keys on. Read models
// that live in their own SQLite file use it too.
func DSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", readerCacheKiB))
	} else {
		q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", stateCacheKiB))
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func openDB(path string, readOnly bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite", DSN(path, readOnly))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, streamID string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	evs := append([]eventstore.EventData(nil), events...)
	if err := eventstore.Prepare(streamID, evs); err != nil {
		return eventstore.AppendResult{}, err
	}
	req := &appendReq{stream: streamID, expected: expected, events: evs, done: make(chan struct{})}
	ctx, span := groupcommit.StartAppend(ctx, "sqlite", streamID, len(evs))
	if err := s.submit(ctx, req); err != nil {
		span.End(eventstore.AppendResult{}, err, nil)
		return eventstore.AppendResult{}, err
	}
	span.End(req.res, req.err, &req.commit)
	return req.res, req.err
}

// submit queues req for the writer and waits for it to be done.
func (s *Store) submit(ctx context.Context, req *appendReq) error {
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
		// The write may still commit; a retry with the same event IDs is
		// idempotent.
		return ctx.Err()
	}
}

const selectCols = `position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at`

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Record, error) {
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	if recs, ok := s.recent.after(after, limit); ok {
		return recs, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+selectCols+` FROM events WHERE position > ? ORDER BY position LIMIT ?`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read all: %w", err)
	}
	return scanRecords(rows, limit)
}

func scanRecords(rows *sql.Rows, capHint int) ([]eventstore.Record, error) {
	defer rows.Close()
	recs := make([]eventstore.Record, 0, min(capHint, 256))
	for rows.Next() {
		var (
			r        eventstore.Record
			pos, ver int64
			id, meta []byte
			data     []byte
			at       int64
		)
		if err := rows.Scan(&pos, &r.StreamID, &ver, &id, &r.Type, &r.SchemaVersion, &data, &meta, &at); err != nil {
			return nil, fmt.Errorf("sqlite: scan: %w", err)
		}
		r.Position, r.Version = uint64(pos), uint64(ver)
		copy(r.ID[:], id)
		r.Data = data
		if len(meta) > 0 {
			if err := json.Unmarshal(meta, &r.Metadata); err != nil {
				return nil, fmt.Errorf("sqlite: metadata at %d: %w", pos, err)
			}
		}
		r.RecordedAt = time.Unix(0, at).UTC()
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read: %w", err)
	}
	return recs, nil
}

// Head implements eventstore.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	var head int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&head); err != nil {
		return 0, fmt.Errorf("sqlite: head: %w", err)
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
	// The write connection belongs to the writer goroutine, so the
	// snapshot rides in its next group commit.
	req := &appendReq{snap: &snap, done: make(chan struct{})}
	if err := s.submit(ctx, req); err != nil {
		return err
	}
	if req.err != nil {
		return fmt.Errorf("sqlite: save snapshot: %w", req.err)
	}
	return nil
}

// LoadSnapshot implements eventstore.Store.
func (s *Store) LoadSnapshot(ctx context.Context, streamID string) (eventstore.Snapshot, bool, error) {
	snap := eventstore.Snapshot{StreamID: streamID}
	var ver int64
	var state []byte
	err := s.r.QueryRowContext(ctx, `SELECT version, state_version, state FROM snapshots WHERE stream_id = ?`, streamID).Scan(&ver, &snap.StateVersion, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("sqlite: load snapshot: %w", err)
	}
	snap.Version, snap.State = uint64(ver), state
	return snap, true, nil
}

// Ping implements eventstore.Store.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.quit:
		return eventstore.ErrClosed
	default:
	}
	return s.r.PingContext(ctx)
}

// Close stops the writer, failing queued appends with ErrClosed, and
// closes the database.
func (s *Store) Close() error {
	var err error
	s.closeMu.Do(func() {
		close(s.quit)
		<-s.done
		<-s.ckptDone
		// A final checkpoint folds the WAL into the database file.
		_, _ = s.ckpt.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
		err = s.closeDBs()
	})
	return err
}

func (s *Store) closeDBs() error {
	err := errors.Join(s.w.Close(), s.r.Close(), s.ckpt.Close())
	s.unlock()
	return err
}

// checkpointer copies the WAL back into the database file from its own
// connection, so that the writer never pays for a checkpoint inside a
// commit (the writer's automatic checkpoints are off). PASSIVE checkpoints
// never block the writer or the readers.
func (s *Store) checkpointer() {
	defer close(s.ckptDone)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			if _, err := s.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				continue
			}
		}
	}
}

// writer owns the write connection.
type writer struct {
	s       *Store
	conn    *sql.Conn
	nextPos int64
	// versions caches stream versions: the writer is the only writer of
	// the file (the lock file keeps other processes out). It holds the
	// streams appended to most recently, at most maxCachedStreams; a
	// stream it forgot is looked up again (memtable, then stream_index).
	versions *bounded.Map[string, int64]
	stmts    stmts
	// args is the multi-row INSERTs' argument buffer, reused.
	args []any
	// now is the recorded-at time of the batch being written.
	now int64
}

// writerCacheKiB is the writer connection's SQLite page cache, in KiB.
// It lives outside the Go heap and fills as the file grows, up to this
// bound: the writer's hot pages are the right edges of the events table
// and its event ID index (positions and UUIDv7s grow), the stream index's
// pages a flush touches and the streams it looks up, so a few MiB hold
// them; each reader connection keeps readerCacheKiB.
const writerCacheKiB = 2048

// readerCacheKiB is each read-only connection's SQLite page cache, in
// KiB (SQLite's default is 2 MiB). Outside the Go heap; a store has
// four readers and a platform ten stores and more, so the default would
// come to 80 MiB and more. The live readers read what was just written
// (most of it from the recent-records ring, without SQL), and a page the
// cache lacks is in the kernel's page cache. Each of these bounds costs
// about twice itself in memory once the cache is full: modernc's C
// allocator gives a 4 KiB page and its header an 8 KiB slot.
const readerCacheKiB = 256

// stateCacheKiB is the page cache, in KiB, of a writable connection
// opened with DSN other than a store's writer: a state database's one
// connection (read models, outbox, inbox, checkpoints), whose hot pages
// are its tables' recent rows.
const stateCacheKiB = 512

// checkpointCacheKiB is the checkpointer's page cache, in KiB: a
// checkpoint copies WAL frames to the database file and reads few pages
// through the cache.
const checkpointCacheKiB = 128

// maxCachedStreams bounds the writer's stream-version cache (about 100
// bytes a stream).
const maxCachedStreams = 1 << 14

func newWriter(ctx context.Context, s *Store) (*writer, error) {
	// Statements prepared on the pool (whose only connection becomes the
	// writer's) are reused by every transaction without re-preparing.
	var st stmts
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&st.ins, insertRows(1)},
		{&st.ver, `SELECT COALESCE(MAX(version), 0) FROM stream_index WHERE stream_id = ?`},
		{&st.id, `SELECT stream_id, position FROM events WHERE event_id = ?`},
		{&st.del, `DELETE FROM events WHERE position >= ?`},
	} {
		var err error
		if *p.dst, err = s.w.PrepareContext(ctx, p.q); err != nil {
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
	}
	for i, n := range insertChunks {
		var err error
		if st.rows[i], err = s.w.PrepareContext(ctx, insertRows(n)); err != nil {
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: writer connection: %w", err)
	}
	// Checkpoints are the checkpointer's job; a larger page cache than
	// the readers' keeps the indexes' hot pages in memory.
	if _, err := conn.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlite: writer pragmas: %w", err)
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, writerCacheKiB)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlite: writer pragmas: %w", err)
	}
	head := s.notifier.Head()
	return &writer{s: s, conn: conn, stmts: st, nextPos: int64(head) + 1, versions: bounded.New[string, int64](maxCachedStreams)}, nil
}

func (w *writer) run() {
	defer close(w.s.done)
	defer w.conn.Close()
	defer w.stmts.close()
	batch := make([]*appendReq, 0, 256)
	for {
		batch = batch[:0]
		var idle <-chan time.Time
		if w.s.mem.size() > 0 {
			idle = time.After(idleFlush)
		}
		select {
		case r := <-w.s.reqs:
			batch = append(batch, r)
		case <-idle:
			w.flushIndex()
			continue
		case <-w.s.quit:
			w.failQueued()
			if !skipFinalFlush {
				w.flushIndex()
			}
			return
		}
		n := max(len(batch[0].events), 1)
		batch, n = groupcommit.Collect(w.s.reqs, batch, n, w.s.opts.MaxBatch, w.s.inFlight.Load)
		w.commit(batch, n)
		if w.s.mem.size() >= flushEvents {
			w.flushIndex()
		}
	}
}

// Test hooks, read by the writer goroutine, which Open starts after they
// are set: skipFinalFlush closes a store as a crash would leave it;
// idleFlush is how long the writer waits, idle, before flushing the
// memtable.
var (
	skipFinalFlush = false
	idleFlush      = time.Second
)

// flushIndex flushes the memtable; a failure leaves it in memory (and the
// log intact), to be retried at the next flush.
func (w *writer) flushIndex() {
	if err := w.flush(context.Background()); err != nil {
		slog.Warn("sqlite: stream index flush failed; will retry", "err", err)
	}
}

// Size implements groupcommit.Request.
func (r *appendReq) Size() int { return max(len(r.events), 1) }

func (w *writer) failQueued() {
	for {
		select {
		case r := <-w.s.reqs:
			r.err = eventstore.ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

func (w *writer) commit(batch []*appendReq, events int) {
	start := time.Now()
	ctx := context.Background()
	err := w.write(ctx, batch)
	if err != nil {
		// Nothing in the batch was committed: fail every append that had
		// not already failed on its own, and resynchronise.
		for _, r := range batch {
			if r.err == nil {
				r.err = fmt.Errorf("sqlite: commit: %w", err)
			}
		}
		w.versions.Clear()
		var head int64
		if qerr := w.conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&head); qerr == nil {
			w.nextPos = head + 1
		}
	} else {
		recs := make([]eventstore.Record, 0, events)
		at := time.Unix(0, w.now).UTC()
		for _, r := range batch {
			if r.wrote && r.err == nil {
				n := int64(len(r.events))
				entries := make([]indexEntry, n)
				for i := range entries {
					entries[i] = indexEntry{version: int64(r.res.NextExpectedVersion) - n + int64(i) + 1, position: int64(r.res.FirstPosition) + int64(i)}
					e := &r.events[i]
					recs = append(recs, eventstore.Record{Position: uint64(entries[i].position), StreamID: r.stream, Version: uint64(entries[i].version),
						ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: bytes.Clone(e.Data), Metadata: e.Metadata, RecordedAt: at})
				}
				w.s.mem.add(r.stream, entries)
			}
		}
		slices.SortFunc(recs, func(a, b eventstore.Record) int { return cmp.Compare(a.Position, b.Position) })
		w.s.recent.add(recs)
		w.s.opts.Observer.Committed(len(batch), events, time.Since(start))
		w.s.notifier.Publish(uint64(w.nextPos - 1))
	}
	took := time.Since(start)
	for _, r := range batch {
		r.commit.Set(len(batch), events, start, took)
		close(r.done)
	}
}

// stmts are the writer's prepared statements for one transaction.
type stmts struct {
	ins, ver, id, del *sql.Stmt
	// rows insert insertChunks[i] events in one statement.
	rows [len(insertChunks)]*sql.Stmt
}

func (s stmts) close() {
	for _, st := range append([]*sql.Stmt{s.ins, s.ver, s.id, s.del}, s.rows[:]...) {
		st.Close()
	}
}

// insertChunks are the row counts of the writer's multi-row INSERTs,
// largest first: a batch's events go in as few statements as these
// make (100 events: 64 + 32 + 4), since each statement costs a
// round through database/sql, the driver and SQLite's VM on top of its
// rows.
var insertChunks = [...]int{64, 32, 16, 8, 4, 2, 1}

// eventCols is how many values an event row binds.
const eventCols = 9

// insertRows is the INSERT of n event rows.
func insertRows(n int) string {
	return `INSERT INTO events (position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at) VALUES ` +
		placeholders(eventCols, n)
}

// placeholders are a multi-row INSERT's VALUES: n rows of cols
// parameters each.
func placeholders(cols, n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// appendEventRow appends the values of e's row in the events table to
// dst, in the order of insertRows' columns.
func appendEventRow(dst []any, pos int64, stream string, version int64, e *eventstore.EventData, now int64) []any {
	var meta []byte
	if e.Metadata != (eventstore.Metadata{}) {
		meta, _ = json.Marshal(e.Metadata)
	}
	return append(dst, pos, stream, version, e.ID[:], e.Type, e.SchemaVersion, []byte(e.Data), meta, now)
}

// errRowByRow says a multi-row INSERT met a duplicate event ID: the
// batch is written again an append at a time, which tells whose it is.
var errRowByRow = errors.New("sqlite: a duplicate event ID in the batch")

func (w *writer) write(ctx context.Context, batch []*appendReq) (err error) {
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback() //nolint:errcheck // reporting the first error
		}
	}()
	st := stmts{
		ins: tx.StmtContext(ctx, w.stmts.ins),
		ver: tx.StmtContext(ctx, w.stmts.ver),
		id:  tx.StmtContext(ctx, w.stmts.id),
		del: tx.StmtContext(ctx, w.stmts.del),
	}
	for i, r := range w.stmts.rows {
		st.rows[i] = tx.StmtContext(ctx, r)
	}
	now := time.Now().UnixNano()
	w.now = now
	first := w.nextPos
	err = w.writeRows(ctx, tx, st, batch, now)
	if err == nil {
		return tx.Commit()
	}
	if !errors.Is(err, errRowByRow) {
		return err
	}
	// Undo the batch's rows and write it again, an append at a time.
	if _, err := st.del.ExecContext(ctx, first); err != nil {
		return err
	}
	w.nextPos = first
	for _, r := range batch {
		r.res, r.err, r.wrote = eventstore.AppendResult{}, nil, false
	}
	for _, r := range batch {
		if err := w.appendOne(ctx, tx, st, r, now); err != nil {
			var af appendFailure
			if !errors.As(err, &af) {
				return err
			}
			r.err = af.error
		}
	}
	return tx.Commit()
}

// writeRows writes the batch's appends inside tx with multi-row INSERTs.
// Each append's expected version is checked as appendOne does, against
// the versions the batch's earlier appends leave; the writer's version
// cache learns them only if the whole batch is written. A duplicate
// event ID fails a whole statement, not one append: writeRows then
// returns errRowByRow and the caller writes the batch the slow way.
func (w *writer) writeRows(ctx context.Context, tx *sql.Tx, st stmts, batch []*appendReq, now int64) error {
	versions := make(map[string]int64, len(batch))
	args := w.args[:0]
	flush := func() error {
		for rest := args; len(rest) > 0; {
			n := len(rest) / eventCols
			i := 0
			for insertChunks[i] > n {
				i++
			}
			c := insertChunks[i] * eventCols
			if _, err := st.rows[i].ExecContext(ctx, rest[:c]...); err != nil {
				if isDuplicateID(err) {
					return errRowByRow
				}
				return err
			}
			rest = rest[c:]
		}
		clear(args) // the rows' data is the callers'
		args = args[:0]
		return nil
	}
	for _, r := range batch {
		if r.snap != nil {
			if err := w.appendOne(ctx, tx, st, r, now); err != nil {
				var af appendFailure
				if !errors.As(err, &af) {
					return err
				}
				r.err = af.error
			}
			continue
		}
		cur, ok := versions[r.stream]
		if !ok {
			var err error
			if cur, err = w.version(ctx, st, r.stream); err != nil {
				return err
			}
		}
		if !r.expected.Check(uint64(cur)) {
			// A retry of an earlier append (perhaps of this batch) may
			// carry a condition that held then: look its first event up
			// once the rows before it are in.
			if err := flush(); err != nil {
				return err
			}
			res, ok, err := w.repeat(ctx, tx, st, r)
			var af appendFailure
			switch {
			case errors.As(err, &af):
				r.err = af.error
			case err != nil:
				return err
			case ok:
				r.res = res
			default:
				r.err = &eventstore.ConcurrencyError{StreamID: r.stream, Expected: r.expected, Actual: uint64(cur)}
			}
			continue
		}
		first := w.nextPos
		for i := range r.events {
			args = appendEventRow(args, w.nextPos, r.stream, cur+int64(i)+1, &r.events[i], now)
			w.nextPos++
		}
		versions[r.stream] = cur + int64(len(r.events))
		r.wrote = true
		r.res = eventstore.AppendResult{FirstPosition: uint64(first), LastPosition: uint64(w.nextPos - 1), NextExpectedVersion: uint64(cur) + uint64(len(r.events))}
	}
	err := flush()
	w.args = args[:0]
	if err != nil {
		return err
	}
	for stream, v := range versions {
		w.versions.Put(stream, v)
	}
	return nil
}

// appendFailure marks an error that fails one append but not its batch.
type appendFailure struct{ error }

func (e appendFailure) Unwrap() error { return e.error }

func (w *writer) version(ctx context.Context, st stmts, stream string) (int64, error) {
	if v, ok := w.versions.Get(stream); ok {
		return v, nil
	}
	if v, ok := w.s.mem.knownLast(stream); ok {
		w.versions.Put(stream, v)
		return v, nil
	}
	var v int64
	if err := st.ver.QueryRowContext(ctx, stream).Scan(&v); err != nil {
		return 0, err
	}
	w.versions.Put(stream, v)
	return v, nil
}

// appendOne writes one append inside the batch's transaction. In SQLite a
// failed statement undoes only itself, so the common path needs no
// savepoint: a duplicate event ID is detected by the insert failing, and a
// partly written append is deleted by position.
func (w *writer) appendOne(ctx context.Context, tx *sql.Tx, st stmts, r *appendReq, now int64) error {
	if r.snap != nil {
		_, err := tx.ExecContext(ctx, `INSERT INTO snapshots (stream_id, version, state_version, state) VALUES (?, ?, ?, ?)
			ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state_version = excluded.state_version, state = excluded.state
			WHERE excluded.version >= snapshots.version`, r.snap.StreamID, int64(r.snap.Version), r.snap.StateVersion, []byte(r.snap.State))
		if err != nil {
			return appendFailure{err}
		}
		return nil
	}
	cur, err := w.version(ctx, st, r.stream)
	if err != nil {
		return err
	}
	if !r.expected.Check(uint64(cur)) {
		// A retry of an earlier append may carry a condition that held then.
		if res, ok, err := w.repeat(ctx, tx, st, r); ok || err != nil {
			r.res = res
			return err
		}
		return appendFailure{&eventstore.ConcurrencyError{StreamID: r.stream, Expected: r.expected, Actual: uint64(cur)}}
	}
	first := w.nextPos
	for i := range r.events {
		e := &r.events[i]
		_, err := st.ins.ExecContext(ctx, appendEventRow(nil, w.nextPos, r.stream, cur+int64(i)+1, e, now)...)
		if err == nil {
			w.nextPos++
			continue
		}
		if !isDuplicateID(err) {
			return err
		}
		// Undo this append's earlier events, then see whether it repeats
		// an append already stored.
		if i > 0 {
			if _, err := st.del.ExecContext(ctx, first); err != nil {
				return err
			}
			w.nextPos = first
		}
		if res, ok, err := w.repeat(ctx, tx, st, r); ok || err != nil {
			r.res = res
			return err
		}
		return appendFailure{fmt.Errorf("%w: %s", eventstore.ErrDuplicateEvent, e.ID)}
	}
	w.versions.Put(r.stream, cur+int64(len(r.events)))
	r.wrote = true
	r.res = eventstore.AppendResult{FirstPosition: uint64(first), LastPosition: uint64(w.nextPos - 1), NextExpectedVersion: uint64(cur) + uint64(len(r.events))}
	return nil
}

// repeat reports whether r's first event ID is already stored; if so, r
// must repeat that append exactly (ok, with its result) or it fails with
// ErrDuplicateEvent.
func (w *writer) repeat(ctx context.Context, tx *sql.Tx, st stmts, r *appendReq) (eventstore.AppendResult, bool, error) {
	var stream string
	var pos int64
	err := st.id.QueryRowContext(ctx, r.events[0].ID[:]).Scan(&stream, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.AppendResult{}, false, nil
	}
	if err != nil {
		return eventstore.AppendResult{}, false, err
	}
	res, err := sameAppend(ctx, tx, r, stream, pos)
	if err != nil {
		return eventstore.AppendResult{}, false, appendFailure{err}
	}
	return res, true, nil
}

// sameAppend checks that r repeats an append already stored in stream
// from position from (an append's events have consecutive positions), and
// returns that append's result.
func sameAppend(ctx context.Context, tx *sql.Tx, r *appendReq, stream string, from int64) (eventstore.AppendResult, error) {
	if stream != r.stream {
		return eventstore.AppendResult{}, fmt.Errorf("%w: %s is already in stream %q", eventstore.ErrDuplicateEvent, r.events[0].ID, stream)
	}
	rows, err := tx.QueryContext(ctx, `SELECT event_id, position, version, stream_id FROM events WHERE position >= ? ORDER BY position LIMIT ?`, from, len(r.events))
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	defer rows.Close()
	var res eventstore.AppendResult
	i := 0
	for ; rows.Next(); i++ {
		var id []byte
		var pos, ver int64
		var sid string
		if err := rows.Scan(&id, &pos, &ver, &sid); err != nil {
			return eventstore.AppendResult{}, err
		}
		if uuid.UUID(id) != r.events[i].ID || sid != stream {
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

func isDuplicateID(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return false
	}
	return strings.Contains(err.Error(), "events.event_id")
}
