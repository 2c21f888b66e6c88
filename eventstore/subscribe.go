package eventstore

import (
	"context"
	"sync"
)

// Handler processes one batch of records delivered by Subscribe. The batch
// is in position order. Returning an error stops the subscription.
type Handler func(ctx context.Context, batch []Record) error

// Subscribe delivers every event after position after to h, in batches of
// at most batchSize (DefaultReadLimit if 0), first catching up with the
// stored log and then following new appends live. Because it is driven by
// the reader's own checkpoint (the last position it delivered), the
// hand-over from catch-up to live has neither a gap nor a duplicate.
//
// Subscribe returns when ctx ends (with ctx.Err()), or when h or a read
// fails.
func Subscribe(ctx context.Context, s Store, after uint64, batchSize int, h Handler) error {
	if batchSize <= 0 {
		batchSize = DefaultReadLimit
	}
	for {
		recs, err := s.ReadAll(ctx, after, batchSize)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			if err := h(ctx, recs); err != nil {
				return err
			}
			after = recs[len(recs)-1].Position
			if len(recs) == batchSize {
				continue
			}
		}
		if err := s.WaitForAppend(ctx, after); err != nil {
			return err
		}
	}
}

// Notifier wakes goroutines waiting for the head position to pass a value.
// Stores use it to implement WaitForAppend. The zero value is ready.
type Notifier struct {
	mu   sync.Mutex
	head uint64
	ch   chan struct{}
}

// Publish records a new head position and wakes every waiter.
func (n *Notifier) Publish(head uint64) { n.set(head, false) }

// Reset sets the head to head, even if lower (as when a read model is
// rebuilt), and wakes every waiter.
func (n *Notifier) Reset(head uint64) { n.set(head, true) }

func (n *Notifier) set(head uint64, lower bool) {
	n.mu.Lock()
	if lower || head > n.head {
		n.head = head
	}
	ch := n.ch
	n.ch = nil
	n.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// Head returns the highest published position.
func (n *Notifier) Head() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.head
}

// Wait blocks until the published head exceeds after or ctx ends.
func (n *Notifier) Wait(ctx context.Context, after uint64) error {
	for {
		n.mu.Lock()
		if n.head > after {
			n.mu.Unlock()
			return nil
		}
		if n.ch == nil {
			n.ch = make(chan struct{})
		}
		ch := n.ch
		n.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Changed returns a channel closed at the next Publish, for callers that
// select over several events.
func (n *Notifier) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}
