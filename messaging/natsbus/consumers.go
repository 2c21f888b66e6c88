package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/agora-commerce/agora/messaging"
)

// ConsumerStats is what the broker says of a durable consumer.
type ConsumerStats struct {
	// Pending counts the stream's messages not yet delivered to it.
	Pending uint64
	// AckPending counts the messages delivered and not yet acknowledged.
	AckPending uint64
	// Redelivered counts the messages delivered more than once and not
	// yet acknowledged.
	Redelivered uint64
}

// ConsumerStats returns the broker's counts for durable consumer c,
// summed over the durable consumers of a consumer of several subjects
// (see Subscribe). A consumer the broker does not hold yet, or an
// ephemeral one (whose name the broker chose), counts zero.
func (b *Bus) ConsumerStats(ctx context.Context, c messaging.Consumer) (ConsumerStats, error) {
	var st ConsumerStats
	if c.Ephemeral {
		return st, nil
	}
	names := []string{c.Name}
	if len(c.Subjects) > 1 {
		names = names[:0]
		for i := range c.Subjects {
			names = append(names, fmt.Sprintf("%s-%d", c.Name, i))
		}
	}
	for _, name := range names {
		cons, err := b.js.Consumer(ctx, b.Stream(c.Stream), name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("natsbus: consumer %s: %w", name, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return st, fmt.Errorf("natsbus: consumer %s: %w", name, err)
		}
		st.Pending += info.NumPending
		st.AckPending += uint64(max(info.NumAckPending, 0))
		st.Redelivered += uint64(max(info.NumRedelivered, 0))
	}
	return st, nil
}

// StreamConsumers returns the broker's counts for every durable consumer
// of stream (the bus's name for it, as Stream), by durable name: for a
// tool that runs no consumer, such as an audit. A stream the broker does
// not hold has none.
func (b *Bus) StreamConsumers(ctx context.Context, stream string) (map[string]ConsumerStats, error) {
	out := map[string]ConsumerStats{}
	s, err := b.js.Stream(ctx, b.Stream(stream))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: stream %s: %w", stream, err)
	}
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Config.Durable == "" {
			continue
		}
		out[info.Name] = ConsumerStats{Pending: info.NumPending, AckPending: uint64(max(info.NumAckPending, 0)),
			Redelivered: uint64(max(info.NumRedelivered, 0))}
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("natsbus: consumers of %s: %w", stream, err)
	}
	return out, nil
}
