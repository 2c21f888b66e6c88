package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bounded"
)

// The stream index is written behind the log, as in an LSM tree.
//
// A B-tree index on (stream_id, version) maintained inside every append
// transaction costs one leaf page per distinct stream per commit: with
// appends spread over many streams that is most of a commit's WAL frames
// (each a write system call) and of its fsync. So the events table is
// indexed by position and event ID only, and the stream index lives in two
// parts:
//
//   - stream_index, a table holding every event up to
//     stream_index_state.indexed_through, and
//   - the memtable, in memory, holding every committed event after it.
//
// The writer adds an append's entries to the memtable after its commit
// and, every flushEvents events (or when idle), writes the memtable into
// stream_index together with the new indexed_through in one transaction,
// sorted by key so that each leaf page is written once per flush rather
// than once per commit. On open the memtable is rebuilt from the events
// after indexed_through, so a crash loses nothing: the log is the truth
// and the index is derived from it.
//
// A reader copies the stream's memtable entries first and queries
// stream_index second; an entry flushed in between appears in both and is
// deduplicated by version, and none can be missed because an entry leaves
// the memtable only after it is committed to stream_index.

// flushEvents is how many memtable entries trigger a flush.
const flushEvents = 8192

// indexRows is how many entries one of a flush's INSERTs carries at most.
const indexRows = 128

type indexEntry struct {
	version, position int64
}

// memtable is the in-memory part of the stream index.
type memtable struct {
	mu sync.RWMutex
	// streams holds the entries not yet flushed: at most flushEvents
	// (and what one group commit adds past it) between flushes.
	streams map[string][]indexEntry
	count   int
	// last is the newest version of the streams appended to most
	// recently, flushed or not: a forward read past it needs no query.
	// Bounded by maxKnownStreams (the least recently appended to are
	// forgotten first), so a store of any number of streams keeps the
	// same memory; a stream it forgot costs one indexed query.
	last *bounded.Map[string, int64]
}

// maxKnownStreams bounds memtable.last (about 100 bytes a stream).
const maxKnownStreams = 1 << 14

func newMemtable() *memtable {
	return &memtable{streams: make(map[string][]indexEntry), last: bounded.New[string, int64](maxKnownStreams)}
}

// add records committed entries (called by the writer only).
func (m *memtable) add(stream string, entries []indexEntry) {
	m.mu.Lock()
	m.streams[stream] = append(m.streams[stream], entries...)
	m.count += len(entries)
	m.last.Put(stream, entries[len(entries)-1].version)
	m.mu.Unlock()
}

// knownLast returns the stream's newest committed version, if the
// memtable knows it: from last, or else from its unflushed entries, which
// are always the stream's newest (so a stream that last forgot and that
// has entries not yet in stream_index is never answered from the table).
func (m *memtable) knownLast(stream string) (int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v, ok := m.last.Peek(stream); ok {
		return v, true
	}
	if e := m.streams[stream]; len(e) > 0 {
		return e[len(e)-1].version, true
	}
	return 0, false
}

// covers reports whether the memtable holds every version of stream from
// v on (its entries are a contiguous suffix of the stream's versions).
func (m *memtable) covers(stream string, v int64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.streams[stream]
	return len(e) > 0 && e[0].version <= v
}

// streamStmt returns the prepared stream query in one direction.
func (s *Store) streamStmt(ctx context.Context, back bool) (*sql.Stmt, error) {
	i := 0
	if back {
		i = 1
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if s.streamStmts[i] != nil {
		return s.streamStmts[i], nil
	}
	order := "ASC"
	if back {
		order = "DESC"
	}
	st, err := s.r.PrepareContext(ctx, `SELECT `+prefixed+` FROM stream_index si JOIN events e ON e.position = si.position
		WHERE si.stream_id = ? AND si.version >= ? AND si.version <= ? ORDER BY si.version `+order+` LIMIT ?`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare stream read: %w", err)
	}
	s.streamStmts[i] = st
	return st, nil
}

// entries returns a copy of the stream's entries.
func (m *memtable) entries(stream string) []indexEntry {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.streams[stream])
}

func (m *memtable) size() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.count
}

// recoverIndex rebuilds the memtable from the events after indexed_through.
func recoverIndex(ctx context.Context, db *sql.DB, m *memtable) error {
	rows, err := db.QueryContext(ctx, `SELECT stream_id, version, position FROM events
		WHERE position > (SELECT indexed_through FROM stream_index_state WHERE id = 1) ORDER BY position`)
	if err != nil {
		return fmt.Errorf("sqlite: recover stream index: %w", err)
	}
	defer rows.Close()
	fresh := make(map[string][]indexEntry)
	n := 0
	for rows.Next() {
		var stream string
		var e indexEntry
		if err := rows.Scan(&stream, &e.version, &e.position); err != nil {
			return fmt.Errorf("sqlite: recover stream index: %w", err)
		}
		fresh[stream] = append(fresh[stream], e)
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: recover stream index: %w", err)
	}
	// last need not be filled: knownLast finds these streams' newest
	// versions in the entries themselves until they are flushed.
	m.mu.Lock()
	m.streams, m.count = fresh, n
	m.mu.Unlock()
	return nil
}

// flush writes the memtable into stream_index (writer goroutine only).
func (w *writer) flush(ctx context.Context) error {
	m := w.s.mem
	m.mu.RLock()
	keys := make([]string, 0, len(m.streams))
	for k := range m.streams {
		keys = append(keys, k)
	}
	m.mu.RUnlock()
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	through := w.nextPos - 1
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	// Multi-row INSERTs of up to indexRows entries: a statement's round
	// through database/sql and the driver costs about what its rows do.
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	args := make([]any, 0, 3*indexRows)
	exec := func() error {
		n := len(args) / 3
		st, ok := stmts[n]
		if !ok {
			q := `INSERT INTO stream_index (stream_id, version, position) VALUES ` + placeholders(3, n)
			var err error
			if st, err = tx.PrepareContext(ctx, q); err != nil {
				return fmt.Errorf("sqlite: flush stream index: %w", err)
			}
			stmts[n] = st
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("sqlite: flush stream index: %w", err)
		}
		args = args[:0]
		return nil
	}
	for _, k := range keys {
		for _, e := range m.entries(k) {
			if args = append(args, k, e.version, e.position); len(args) == cap(args) {
				if err := exec(); err != nil {
					return err
				}
			}
		}
	}
	if len(args) > 0 {
		if err := exec(); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE stream_index_state SET indexed_through = ? WHERE id = 1`, through); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// Only the writer adds entries, so the memtable holds exactly what was
	// flushed.
	m.mu.Lock()
	m.streams, m.count = make(map[string][]indexEntry), 0
	m.mu.Unlock()
	return nil
}

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, streamID string, r eventstore.StreamRead) ([]eventstore.Record, error) {
	limit := r.Limit
	if limit <= 0 {
		limit = eventstore.DefaultReadLimit
	}
	back := r.Direction == eventstore.Backward
	lo, hi := int64(r.From), int64(1<<63-1)
	if back {
		lo, hi = 0, int64(r.From)
		if r.From == 0 {
			hi = 1<<63 - 1
		}
	}
	if v, ok := s.mem.knownLast(streamID); ok && !back && lo > v {
		return []eventstore.Record{}, nil // nothing after the newest version
	}
	// The memtable first, then the table (see the note at the top).
	var fromMem []int64
	for _, e := range s.mem.entries(streamID) {
		if e.version >= lo && e.version <= hi {
			fromMem = append(fromMem, e.position)
		}
	}
	if back {
		slices.Reverse(fromMem)
	}
	if len(fromMem) > limit {
		fromMem = fromMem[:limit]
	}
	var recs []eventstore.Record
	// Backward reads take the memtable's (newest) entries first; forward
	// reads the table's (oldest) first.
	if back && len(fromMem) == limit {
		return s.byPositions(ctx, fromMem, true)
	}
	// The memtable holds a contiguous suffix of each stream's versions
	// (a flush empties it whole), so a forward read starting inside it
	// needs nothing from the table: the common "anything new since
	// version v?" read of a hot aggregate costs no table query.
	var indexed []eventstore.Record
	if back || len(fromMem) == 0 || !s.mem.covers(streamID, lo) {
		stmt, err := s.streamStmt(ctx, back)
		if err != nil {
			return nil, err
		}
		rows, err := stmt.QueryContext(ctx, streamID, lo, hi, limit)
		if err != nil {
			return nil, fmt.Errorf("sqlite: read stream %s: %w", streamID, err)
		}
		// Most stream reads find a few events or none (an aggregate's
		// tail): room for a few, not for the limit (a record is about 200
		// bytes, and this read runs several times an order).
		if indexed, err = scanRecords(rows, min(limit, 8)); err != nil {
			return nil, err
		}
	}
	mem, err := s.byPositions(ctx, fromMem, back)
	if err != nil {
		return nil, err
	}
	if back {
		recs = mergeVersions(mem, indexed, true)
	} else {
		recs = mergeVersions(indexed, mem, false)
	}
	if len(recs) > limit {
		recs = recs[:limit]
	}
	return recs, nil
}

// mergeVersions merges two version-ordered record lists (a's versions
// come first in the order) dropping duplicates.
func mergeVersions(a, b []eventstore.Record, desc bool) []eventstore.Record {
	out := make([]eventstore.Record, 0, len(a)+len(b))
	seen := make(map[uint64]bool, len(a))
	for _, r := range a {
		seen[r.Version] = true
		out = append(out, r)
	}
	for _, r := range b {
		if !seen[r.Version] {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y eventstore.Record) int {
		if desc {
			return int(int64(y.Version) - int64(x.Version))
		}
		return int(int64(x.Version) - int64(y.Version))
	})
	return out
}

// byPositions reads the events at the given positions, in that order.
func (s *Store) byPositions(ctx context.Context, positions []int64, desc bool) ([]eventstore.Record, error) {
	if len(positions) == 0 {
		return nil, nil
	}
	if recs, ok := s.recent.at(positions); ok {
		return recs, nil
	}
	var recs []eventstore.Record
	for chunk := range slices.Chunk(positions, 500) {
		args := make([]any, len(chunk))
		for i, p := range chunk {
			args[i] = p
		}
		order := "ASC"
		if desc {
			order = "DESC"
		}
		rows, err := s.r.QueryContext(ctx, `SELECT `+selectCols+` FROM events WHERE position IN (?`+strings.Repeat(",?", len(chunk)-1)+`) ORDER BY position `+order, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: read events: %w", err)
		}
		part, err := scanRecords(rows, len(chunk))
		if err != nil {
			return nil, err
		}
		recs = append(recs, part...)
	}
	return recs, nil
}

const prefixed = `e.position, e.stream_id, e.version, e.event_id, e.type, e.schema_version, e.data, e.metadata, e.recorded_at`
