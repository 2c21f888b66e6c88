package groupcommit_test

import (
	"testing"

	"github.com/agora-commerce/agora/internal/groupcommit"
)

type req int

func (r req) Size() int { return int(r) }

func queue(sizes ...int) chan req {
	c := make(chan req, len(sizes))
	for _, s := range sizes {
		c <- req(s)
	}
	return c
}

func TestCollectTakesEverythingQueued(t *testing.T) {
	c := queue(1, 1, 1)
	batch, n := groupcommit.Collect(c, []req{1}, 1, 100, func() int64 { return 4 })
	if len(batch) != 4 || n != 4 || len(c) != 0 {
		t.Fatalf("batch %v (%d events), %d left", batch, n, len(c))
	}
}

func TestCollectStopsAtMaxBatch(t *testing.T) {
	c := queue(1, 2, 3, 4, 5)
	batch, n := groupcommit.Collect(c, []req{1}, 1, 6, func() int64 { return 100 })
	// 1 + 1 + 2 + 3 reaches 6: the rest stays queued.
	if len(batch) != 4 || n != 7 || len(c) != 2 {
		t.Fatalf("batch %v (%d events), %d left", batch, n, len(c))
	}
}

func TestCollectLoneAppenderDoesNotWaitForOthers(t *testing.T) {
	c := queue()
	calls := 0
	batch, n := groupcommit.Collect(c, []req{1}, 1, 100, func() int64 { calls++; return 1 })
	if len(batch) != 1 || n != 1 || calls != 1 {
		t.Fatalf("batch %v (%d events), inFlight asked %d times", batch, n, calls)
	}
}

func TestCollectGivesUpOnStragglers(t *testing.T) {
	// Callers that never queue (inFlight stays high) cannot hold a batch
	// forever: Collect returns what it has after its linger.
	c := queue(1)
	batch, n := groupcommit.Collect(c, []req{1}, 1, 100, func() int64 { return 1000 })
	if len(batch) != 2 || n != 2 {
		t.Fatalf("batch %v (%d events)", batch, n)
	}
}
