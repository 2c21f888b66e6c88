package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/backoff"
	"github.com/agora-commerce/agora/internal/platform/tracectx"
)

// Entry is one position of a Log: the message to publish there, or nil
// when there is nothing to publish (a domain event that is not part of
// the published language, say).
type Entry struct {
	// Position is the entry's place in the log, starting at 1.
	Position uint64
	// Message is what to publish, or nil.
	Message *Message
}

// Log is an ordered, durable source of messages to publish: an outbox.
type Log interface {
	// Read returns up to limit entries after position after, in order.
	Read(ctx context.Context, after uint64, limit int) ([]Entry, error)
	// Wait blocks until the log may have grown past after, or ctx ends.
	Wait(ctx context.Context, after uint64) error
}

// Mapper turns a domain event into the integration message to publish
// (ok false: publish nothing for it). It must be deterministic: a
// republished event must map to the same message.
type Mapper func(r eventstore.Record) (m Message, ok bool, err error)

// FirstOf maps a record with the first of mappers that knows it: the
// mapping of a log several contexts write.
func FirstOf(mappers ...Mapper) Mapper {
	return func(r eventstore.Record) (Message, bool, error) {
		for _, f := range mappers {
			if m, ok, err := f(r); ok || err != nil {
				return m, ok, err
			}
		}
		return Message{}, false, nil
	}
}

// EventLog is an event store as the outbox of the contexts whose events it
// holds: every record is mapped by m.
func EventLog(store eventstore.Store, m Mapper) Log { return eventLog{store, m} }

type eventLog struct {
	store eventstore.Store
	m     Mapper
}

func (l eventLog) Read(ctx context.Context, after uint64, limit int) ([]Entry, error) {
	recs, err := l.store.ReadAll(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(recs))
	for i, r := range recs {
		out[i].Position = r.Position
		m, ok, err := l.m(r)
		if err != nil {
			return nil, fmt.Errorf("messaging: map event %d (%s): %w", r.Position, r.Type, err)
		}
		if !ok {
			continue
		}
		if m.ID == "" {
			m.ID = r.ID.String()
		}
		if m.Headers == nil {
			m.Headers = make(map[string]string, 4)
		}
		SetMetadata(m.Headers, r.Metadata)
		out[i].Message = &m
	}
	return out, nil
}

func (l eventLog) Wait(ctx context.Context, after uint64) error {
	return l.store.WaitForAppend(ctx, after)
}

// Checkpoints stores how far each relay has published.
type Checkpoints interface {
	// Load returns the relay's position (0 if it has none).
	Load(ctx context.Context, relay string) (uint64, error)
	// Save records the relay's position.
	Save(ctx context.Context, relay string, pos uint64) error
}

// Tail reports the highest log position that the broker durably holds
// from this relay; ok is false when the broker cannot tell (its stream
// has aged out every message, say).
type Tail func(ctx context.Context) (pos uint64, ok bool, err error)

// RelayOptions configure a Relay.
type RelayOptions struct {
	// Name keys the relay's checkpoint.
	Name string
	// BatchSize is how many entries are read and published at once
	// (default 1024).
	BatchSize int
	// Tail, if set, is asked on start and after RequestRewind; the relay
	// resumes from the lower of its checkpoint and the tail, so that a
	// tail the broker acknowledged but lost (a crash before its lazy
	// fsync) is published again.
	Tail Tail
	// Logger receives failures (default slog.Default()).
	Logger *slog.Logger
	// Published, if set, is called with the count of each published batch.
	Published func(n int)
	// Leader, if set, lets the relay publish only while it holds the
	// right: where several processes run the same relay (instances of one
	// context), one publishes and the others stand by, taking over from
	// the checkpoint when it goes. Without it every instance would
	// publish everything and move the one checkpoint back and forth.
	Leader Leader
	// SpanAttributes are added to the span of each batch it publishes
	// (the platform names its context and the broker there).
	SpanAttributes []attribute.KeyValue
}

// Relay publishes a Log's messages: at least once, in order, moving its
// checkpoint only after the broker acknowledged.
type Relay struct {
	log    Log
	pub    Publisher
	cp     Checkpoints
	opts   RelayOptions
	rewind atomic.Bool
	// pos is the last position published and checkpointed.
	pos eventstore.Notifier
}

// NewRelay returns a relay of log to pub with checkpoints in cp.
func NewRelay(log Log, pub Publisher, cp Checkpoints, opts RelayOptions) *Relay {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &Relay{log: log, pub: pub, cp: cp, opts: opts}
	r.rewind.Store(true)
	return r
}

// RequestRewind asks the relay to check the broker's tail again before
// its next batch; call it when the broker may have restarted (on
// reconnect).
func (r *Relay) RequestRewind() { r.rewind.Store(true) }

// Position is the last position published and checkpointed.
func (r *Relay) Position() uint64 { return r.pos.Head() }

// WaitFor blocks until the relay has published through pos, or ctx ends.
func (r *Relay) WaitFor(ctx context.Context, pos uint64) error {
	if pos == 0 {
		return nil
	}
	return r.pos.Wait(ctx, pos-1)
}

// moved records the relay's position (lower after a rewind).
func (r *Relay) moved(pos uint64) { r.pos.Reset(pos) }

// Run publishes until ctx ends; failures are retried with backoff. With
// a Leader, it publishes only while it holds the right, asking again when
// it loses it.
func (r *Relay) Run(ctx context.Context) error {
	if r.opts.Leader == nil {
		return r.run(ctx)
	}
	for {
		held, release, err := r.opts.Leader(ctx)
		if err != nil {
			return err
		}
		r.opts.Logger.Info("relay: publishing", "relay", r.opts.Name)
		r.rewind.Store(true) // another process published until now
		err = r.run(held)
		release()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.opts.Logger.Warn("relay: lost the right to publish; standing by", "relay", r.opts.Name, "err", err)
	}
}

// run publishes from the checkpoint until ctx ends.
func (r *Relay) run(ctx context.Context) error {
	pos, err := r.cp.Load(ctx, r.opts.Name)
	for err != nil {
		r.opts.Logger.Warn("relay: load checkpoint", "relay", r.opts.Name, "err", err)
		if serr := backoff.Sleep(ctx, time.Second); serr != nil {
			return serr
		}
		pos, err = r.cp.Load(ctx, r.opts.Name)
	}
	r.moved(pos)
	failures := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.step(ctx, &pos); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.opts.Logger.Warn("relay: will retry", "relay", r.opts.Name, "position", pos, "err", err)
			failures++
			if err := backoff.Sleep(ctx, backoff.Delay(50*time.Millisecond, 5*time.Second, failures)); err != nil {
				return err
			}
			continue
		}
		failures = 0
	}
}

func (r *Relay) step(ctx context.Context, pos *uint64) error {
	if r.opts.Tail != nil && r.rewind.Swap(false) {
		t, ok, err := r.opts.Tail(ctx)
		if err != nil {
			r.rewind.Store(true)
			return fmt.Errorf("read the broker's tail: %w", err)
		}
		if ok && t < *pos {
			r.opts.Logger.Warn("relay: the broker lost an acknowledged tail; publishing it again",
				"relay", r.opts.Name, "checkpoint", *pos, "broker", t)
			*pos = t
			r.moved(t)
		}
	}
	entries, err := r.log.Read(ctx, *pos, r.opts.BatchSize)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return r.log.Wait(ctx, *pos)
	}
	var traces tracectx.Batch
	msgs := make([]Message, 0, len(entries))
	for _, e := range entries {
		if e.Message == nil {
			continue
		}
		m := *e.Message
		h := make(map[string]string, len(m.Headers)+2)
		for k, v := range m.Headers {
			h[k] = v
		}
		h[HeaderPosition] = strconv.FormatUint(e.Position, 10)
		if m.Type != "" {
			h[HeaderType] = m.Type
		}
		m.Headers = h
		msgs = append(msgs, m)
		traces.Add(tracectx.Header(h))
	}
	last := entries[len(entries)-1].Position
	ctx, span := r.publishSpan(ctx, &traces, msgs, entries[0].Position, last)
	err = r.publish(ctx, msgs, last)
	tracectx.Fail(span, err)
	span.End()
	if err != nil {
		return err
	}
	*pos = last
	r.moved(last)
	return nil
}

// publish publishes msgs and checkpoints last.
func (r *Relay) publish(ctx context.Context, msgs []Message, last uint64) error {
	if len(msgs) > 0 {
		if err := r.pub.Publish(ctx, msgs...); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		if r.opts.Published != nil {
			r.opts.Published(len(msgs))
		}
	}
	if err := r.cp.Save(ctx, r.opts.Name, last); err != nil {
		// Published but not checkpointed: the next attempt republishes
		// this batch and the broker drops the repeats.
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

var tracer = otel.Tracer("github.com/agora-commerce/agora/messaging")

// publishSpan starts the span of publishing a batch, positions from to
// last: a producer span in the trace of the batch's first message, with
// links to the trace context of each (see tracectx.Batch), or none if no
// message carries one. Each message of the span's trace then carries the
// span's trace context, so its consumers are the span's children; the
// others keep theirs.
func (r *Relay) publishSpan(ctx context.Context, traces *tracectx.Batch, msgs []Message, from, last uint64) (context.Context, trace.Span) {
	if traces.Empty() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	attrs := make([]attribute.KeyValue, 0, 6+len(r.opts.SpanAttributes))
	attrs = append(attrs, attribute.String("messaging.operation.type", "send"), attribute.Int("messaging.batch.message_count", len(msgs)),
		attribute.String("agora.relay", r.opts.Name), attribute.Int64("agora.position.from", int64(from)), attribute.Int64("agora.position", int64(last)))
	if len(msgs) > 0 && msgs[0].Subject == msgs[len(msgs)-1].Subject {
		attrs = append(attrs, attribute.String("messaging.destination.name", msgs[0].Subject))
	}
	attrs = append(attrs, r.opts.SpanAttributes...)
	ctx, span := traces.Start(ctx, tracer, "relay publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	sc := span.SpanContext()
	if !sc.IsValid() {
		return ctx, span
	}
	tp := tracectx.Format(sc)
	for _, m := range msgs {
		if old := tracectx.Header(m.Headers); old != "" && tracectx.Parse(old).TraceID() == sc.TraceID() {
			delete(m.Headers, "Traceparent")
			m.Headers[HeaderTraceParent] = tp
		}
	}
	return ctx, span
}
