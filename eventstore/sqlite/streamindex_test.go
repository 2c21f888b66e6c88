package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
)

// TestStreamIndexAcrossFlushesAndCrash appends enough events to flush the
// memtable several times, "crashes" (closes without the final flush),
// reopens, and checks every stream reads back whole in both directions
// and keeps counting versions.
func TestStreamIndexAcrossFlushesAndCrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "es.db")
	// No idle flush: the crash must find entries in memory however slowly
	// this test runs (under -race, say).
	idleFlush = time.Hour
	defer func() { idleFlush = time.Second }()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const streams, total = 37, 3*flushEvents + 123
	for i := 0; i < total; {
		n := 1 + i%3
		var evs []eventstore.EventData
		for j := 0; j < n; j++ {
			evs = append(evs, eventstore.EventData{Type: "N", Data: json.RawMessage(strconv.Itoa(i + j))})
		}
		if _, err := s.Append(ctx, fmt.Sprintf("s-%d", i%streams), eventstore.Any, evs...); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	var flushed int64
	s.r.QueryRow(`SELECT indexed_through FROM stream_index_state`).Scan(&flushed)
	if flushed == 0 || s.mem.size() == 0 {
		t.Fatalf("want both flushed (%d) and in-memory (%d) entries", flushed, s.mem.size())
	}
	check := func(s *Store) map[string]uint64 {
		t.Helper()
		lens := map[string]uint64{}
		for k := 0; k < streams; k++ {
			id := fmt.Sprintf("s-%d", k)
			var fwd []eventstore.Record
			for from := uint64(1); ; {
				page, err := s.ReadStream(ctx, id, eventstore.StreamRead{From: from, Limit: 97})
				if err != nil {
					t.Fatal(err)
				}
				fwd = append(fwd, page...)
				if len(page) < 97 {
					break
				}
				from = page[len(page)-1].Version + 1
			}
			for i, r := range fwd {
				if r.Version != uint64(i+1) || r.StreamID != id || (i > 0 && r.Position <= fwd[i-1].Position) {
					t.Fatalf("%s forward[%d] = v%d pos %d", id, i, r.Version, r.Position)
				}
			}
			back, err := s.ReadStream(ctx, id, eventstore.StreamRead{Direction: eventstore.Backward, Limit: len(fwd) + 5})
			if err != nil || len(back) != len(fwd) {
				t.Fatalf("%s backward: %d records, %v; forward %d", id, len(back), err, len(fwd))
			}
			for i, r := range back {
				if r.Version != uint64(len(fwd)-i) {
					t.Fatalf("%s backward[%d] = v%d", id, i, r.Version)
				}
			}
			lens[id] = uint64(len(fwd))
		}
		return lens
	}
	before := check(s)
	skipFinalFlush = true
	s.Close()
	skipFinalFlush = false

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.mem.size() == 0 {
		t.Fatal("recovery rebuilt no memtable entries")
	}
	after := check(s)
	var sum uint64
	for id, n := range before {
		if after[id] != n {
			t.Fatalf("%s: %d events before the crash, %d after", id, n, after[id])
		}
		sum += n
		// Versions continue from the recovered index.
		if _, err := s.Append(ctx, id, eventstore.Exact(n), eventstore.EventData{Type: "N"}); err != nil {
			t.Fatalf("%s: append at %d after recovery: %v", id, n, err)
		}
	}
	if sum != total {
		t.Fatalf("read %d events, appended %d", sum, total)
	}
}

// TestSecondProcessIsLockedOut checks that one store file has one owner.
func TestSecondProcessIsLockedOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "es.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(context.Background(), path, Options{}); err == nil {
		t.Fatal("a second store opened the same file")
	}
}
