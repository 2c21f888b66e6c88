package messaging

import (
	"context"
	"errors"
)

// HeadLog is a Log that can tell its last position, so that a relay of
// it can tell its lag (Relay.Lag). EventLog and SQLOutbox are HeadLogs.
type HeadLog interface {
	Log
	// Head returns the log's last position (0 when it is empty).
	Head(ctx context.Context) (uint64, error)
}

// ErrNoHead reports a relay's lag asked of a log that cannot tell its
// head.
var ErrNoHead = errors.New("messaging: the log cannot tell its head")

// Head implements HeadLog: the event store's head.
func (l eventLog) Head(ctx context.Context) (uint64, error) { return l.store.Head(ctx) }

// Name returns the relay's name (RelayOptions.Name), which keys its
// checkpoint.
func (r *Relay) Name() string { return r.opts.Name }

// Lag returns how many positions the relay's checkpoint is behind its
// log's head: what remains to publish. It reads the stored checkpoint,
// not this relay's memory, so that a relay standing by for another
// process's (RelayOptions.Leader) reports the lag of the one publishing.
// The log must be a HeadLog (else ErrNoHead).
func (r *Relay) Lag(ctx context.Context) (uint64, error) {
	hl, ok := r.log.(HeadLog)
	if !ok {
		return 0, ErrNoHead
	}
	head, err := hl.Head(ctx)
	if err != nil {
		return 0, err
	}
	pos, err := r.cp.Load(ctx, r.opts.Name)
	if err != nil {
		return 0, err
	}
	if head > pos {
		return head - pos, nil
	}
	return 0, nil
}
