package sqlite

import (
	"sync"

	"github.com/agora-commerce/agora/eventstore"
)

// recentRecords is how many of the newest committed records the store
// keeps in memory: a fixed ring of about 200 bytes a slot plus each
// record's data and metadata (about 0.5 KB more), allocated when the store
// opens, so the memory is the same after a thousand events as after a
// billion (about 3 MB a store; a platform has ten stores and more). The
// live readers follow the head within a few hundred events; one more
// than that many events behind reads the table.
const recentRecords = 1 << 12

// recent holds the newest committed records, by position, in a ring.
//
// Every live reader of the log — the projections, the relay, the saga
// index — asks for what was just committed; so does an aggregate reading
// the tail of its stream. The writer has those records in hand when it
// commits, so it keeps them here and such reads cost no query and no
// decoding. Positions held are always contiguous, [lo, hi]; a read that
// starts before lo goes to the table. The writer adds a batch before it
// publishes the new head, so a reader woken by the head finds it here.
type recent struct {
	mu     sync.RWMutex
	ring   []eventstore.Record
	lo, hi uint64 // held: lo..hi; none when hi < lo
}

func newRecent(n int) *recent { return &recent{ring: make([]eventstore.Record, n), lo: 1} }

// add appends records with consecutive positions. Records that do not
// follow the newest held (after a failed commit the writer re-reads its
// head) start the ring afresh.
func (c *recent) add(recs []eventstore.Record) {
	if len(recs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if recs[0].Position != c.hi+1 || c.hi < c.lo {
		c.lo, c.hi = recs[0].Position, recs[0].Position-1
	}
	n := uint64(len(c.ring))
	for _, r := range recs {
		c.ring[r.Position%n] = r
		c.hi = r.Position
	}
	if c.hi-c.lo+1 > n {
		c.lo = c.hi - n + 1
	}
}

// after returns up to limit records after position after, and whether
// the ring could answer (it holds position after+1, or after is its
// newest).
func (c *recent) after(after uint64, limit int) ([]eventstore.Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.hi < c.lo || after+1 < c.lo || after > c.hi {
		return nil, false
	}
	end := min(c.hi, after+uint64(limit))
	out := make([]eventstore.Record, 0, end-min(end, after))
	n := uint64(len(c.ring))
	for p := after + 1; p <= end; p++ {
		out = append(out, c.ring[p%n])
	}
	return out, true
}

// at returns the records at positions, in that order, if it holds them all.
func (c *recent) at(positions []int64) ([]eventstore.Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := uint64(len(c.ring))
	for _, p := range positions {
		if p < 1 || uint64(p) < c.lo || uint64(p) > c.hi {
			return nil, false
		}
	}
	out := make([]eventstore.Record, len(positions))
	for i, p := range positions {
		out[i] = c.ring[uint64(p)%n]
	}
	return out, true
}
