package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
)

// TestRecentRecordsAnswerAsTheTable checks that reads the in-memory ring
// answers — the log at or near its head, stream tails — return exactly
// what the table holds, across the ring's wrap-around, an append that
// failed in the middle of a batch, and idempotent repeats.
func TestRecentRecordsAnswerAsTheTable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "es.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.recent = newRecent(16) // small, so reads cross the ring's edges
	meta := eventstore.Metadata{Tenant: "t", CorrelationID: "c", CausationID: "k", User: "u"}
	for i := range 100 {
		n := 1 + i%3
		evs := make([]eventstore.EventData, n)
		for j := range evs {
			evs[j] = eventstore.EventData{ID: uuid.Must(uuid.NewV7()), Type: "N", SchemaVersion: 1 + j%2, Data: json.RawMessage(strconv.Itoa(i*10 + j))}
			if i%2 == 0 {
				evs[j].Metadata = meta
			}
		}
		stream := fmt.Sprintf("s-%d", i%7)
		res, err := s.Append(ctx, stream, eventstore.Any, evs...)
		if err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 { // an idempotent repeat, and a conflicting append: neither adds records
			if _, err := s.Append(ctx, stream, eventstore.Any, evs...); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, stream, eventstore.Exact(res.NextExpectedVersion-1), eventstore.EventData{Type: "X"}); err == nil {
				t.Fatal("a stale expected version was accepted")
			}
		}
		head := res.LastPosition
		if _, ok := s.recent.after(head-1, 1); !ok {
			t.Fatalf("the ring does not hold the head (%d)", head)
		}
		for after := head - min(head, 20); after <= head; after++ {
			for _, limit := range []int{1, 3, 50} {
				got, err := s.ReadAll(ctx, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				want := tableAll(t, s, after, limit)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("ReadAll(%d, %d) at head %d:\n got %+v\nwant %+v", after, limit, head, got, want)
				}
			}
		}
		tail, err := s.ReadStream(ctx, stream, eventstore.StreamRead{From: res.NextExpectedVersion - uint64(n) + 1})
		if err != nil {
			t.Fatal(err)
		}
		if want := tableAll(t, s, res.FirstPosition-1, n); !reflect.DeepEqual(tail, want) {
			t.Fatalf("stream tail:\n got %+v\nwant %+v", tail, want)
		}
	}
}

// tableAll reads the log from the table, bypassing the ring.
func tableAll(t *testing.T, s *Store, after uint64, limit int) []eventstore.Record {
	t.Helper()
	rows, err := s.r.Query(`SELECT `+selectCols+` FROM events WHERE position > ? ORDER BY position LIMIT ?`, int64(after), limit)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := scanRecords(rows, limit)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
