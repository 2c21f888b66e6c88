package natsbus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultRequestTimeout bounds a Request whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// Respond answers the requests sent to subject (in the bus's namespace)
// with h until ctx ends. Of the processes responding in one queue, one
// answers each request; each request is handled on a goroutine of its
// own. Requests are core NATS, not JetStream: nothing is kept, so a
// request that finds no responder, or whose responder dies, fails and is
// the requester's to repeat — h must be idempotent.
func (b *Bus) Respond(ctx context.Context, subject, queue string, h func(ctx context.Context, data []byte) []byte) error {
	sub, err := b.nc.QueueSubscribe(b.subject(subject), queue, func(m *nats.Msg) {
		go func() {
			if err := m.Respond(h(ctx, m.Data)); err != nil && ctx.Err() == nil {
				b.opts.Logger.Warn("natsbus: respond", "subject", subject, "err", err)
			}
		}()
	})
	if err != nil {
		return fmt.Errorf("natsbus: respond on %s: %w", subject, err)
	}
	<-ctx.Done()
	_ = sub.Drain()
	return ctx.Err()
}

// Request sends data to subject (in the bus's namespace) and returns the
// answer of one responder. It fails at once when no process responds,
// and when ctx ends (after DefaultRequestTimeout if ctx has no deadline).
func (b *Bus) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	m, err := b.nc.RequestWithContext(ctx, b.subject(subject), data)
	if err != nil {
		return nil, fmt.Errorf("natsbus: request %s: %w", subject, err)
	}
	return m.Data, nil
}
