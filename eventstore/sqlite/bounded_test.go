package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
)

// TestKnownVersionsStayBounded appends to more streams than the store
// remembers versions of: its memory of them stays within the bound, and
// the streams it forgot keep their versions, as do the newest, some of
// them still in the memtable only: appends at their exact version
// succeed, at a stale one fail, and reads see every event.
func TestKnownVersionsStayBounded(t *testing.T) {
	ctx := context.Background()
	// No idle flush: the newest streams stay in the memtable only.
	idleFlush = time.Hour
	defer func() { idleFlush = time.Second }()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "es.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := maxKnownStreams + maxCachedStreams + flushEvents/2
	stream := func(i int) string { return fmt.Sprintf("s-%06d", i) }
	ev := func() eventstore.EventData { return eventstore.EventData{Type: "t", Data: []byte(`{}`)} }
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				if _, err := s.Append(ctx, stream(i), eventstore.NoStream, ev()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.mem.mu.RLock()
	known, unflushed := s.mem.last.Len(), s.mem.count
	s.mem.mu.RUnlock()
	if known > maxKnownStreams {
		t.Fatalf("the memtable knows the versions of %d streams, more than its bound %d", known, maxKnownStreams)
	}
	if unflushed == 0 {
		t.Fatal("every entry was flushed: the test wants some in the memtable only")
	}
	// The oldest streams were forgotten; the newest are in the memtable.
	for _, i := range []int{0, 1, n / 2, n - 2, n - 1} {
		if _, err := s.Append(ctx, stream(i), eventstore.Exact(1), ev()); err != nil {
			t.Fatalf("append to %s at version 1: %v", stream(i), err)
		}
		_, err := s.Append(ctx, stream(i), eventstore.Exact(1), ev())
		var ce *eventstore.ConcurrencyError
		if !errors.As(err, &ce) || ce.Actual != 2 {
			t.Fatalf("append to %s at stale version 1: %v, want a concurrency error at version 2", stream(i), err)
		}
		recs, err := s.ReadStream(ctx, stream(i), eventstore.StreamRead{})
		if err != nil || len(recs) != 2 || recs[1].Version != 2 {
			t.Fatalf("read %s: %d records, %v; want versions 1 and 2", stream(i), len(recs), err)
		}
	}
}
