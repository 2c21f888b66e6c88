package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
)

// BenchmarkStreamIndex reads the last version of a stream (a backward
// read of one event, as a handler checks where a stream stands) in a
// store of entries streams of two events each, all in stream_index: the
// cost must follow the B-tree's depth, not the number of streams. The 1M
// case builds its store in about 10 s; -short leaves it out.
func BenchmarkStreamIndex(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%s", sizeName(n)), func(b *testing.B) {
			if n > 10_000 && testing.Short() {
				b.Skip("-short: 10k only")
			}
			ctx := context.Background()
			s := storeOfStreams(b, n)
			defer s.Close()
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("order-%08d", (i*7919)%n)
				recs, err := s.ReadStream(ctx, id, eventstore.StreamRead{Direction: eventstore.Backward, Limit: 1})
				if err != nil || len(recs) != 1 || recs[0].Version != 2 {
					b.Fatalf("%s: %v, %v", id, recs, err)
				}
			}
		})
	}
}

// storeOfStreams returns a store of n streams "order-%08d" of two events
// each, written straight into its tables (and stream_index) in one
// transaction, as many appends and flushes would leave them.
func storeOfStreams(tb testing.TB, n int) *Store {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "es.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", DSN(path, false))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	ev, err := tx.Prepare(`INSERT INTO events (position, stream_id, version, event_id, type, schema_version, data, metadata, recorded_at) VALUES (?, ?, ?, ?, 'bench.Event', 1, '{}', NULL, 0)`)
	if err != nil {
		tb.Fatal(err)
	}
	ix, err := tx.Prepare(`INSERT INTO stream_index (stream_id, version, position) VALUES (?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	pos := int64(0)
	for v := int64(1); v <= 2; v++ {
		for i := range n {
			pos++
			id := fmt.Sprintf("order-%08d", i)
			u := uuid.New()
			if _, err := ev.Exec(pos, id, v, u[:]); err != nil {
				tb.Fatal(err)
			}
			if _, err := ix.Exec(id, v, pos); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if _, err := tx.Exec(`UPDATE stream_index_state SET indexed_through = ?`, pos); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if s, err = Open(ctx, path, Options{}); err != nil {
		tb.Fatal(err)
	}
	return s
}

func sizeName(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}
