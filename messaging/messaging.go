// Package messaging moves integration events and commands between bounded
// contexts without losing or doubling any of them.
//
// The path of a message is outbox → bus → inbox:
//
//   - The outbox is a Log: an ordered, durable record of what a context has
//     decided to publish, written in the same transaction as the decision.
//     For an event-sourced context the event store is the outbox (EventLog);
//     a context that keeps plain state writes Outbox rows in its own
//     transaction (SQLOutbox).
//   - A Relay tails a Log and publishes each message with its ID as the
//     broker's de-duplication key, and moves its checkpoint only after the
//     broker acknowledged. A crash before the checkpoint moves republishes,
//     and the broker drops the repeat. On start, and whenever the Tail says
//     the broker may have lost an acknowledged tail, the relay rewinds to
//     the last position the broker actually holds.
//   - Consumers are durable and acknowledge explicitly; a handler records
//     the message ID in an Inbox in the same transaction as its effect (or,
//     for an event-sourced effect, derives its event IDs from the message ID
//     with EventID, which the event store treats as an idempotent re-append),
//     so a redelivery never doubles an effect.
//
// The Publisher and Subscriber contracts are implemented by
// messaging/natsbus over NATS JetStream, embedded or external.
package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/backoff"
)

// Headers carried by every message Agora publishes.
const (
	// HeaderType is the message type, e.g. "payments.AccountOpened.v1".
	HeaderType = "Agora-Type"
	// HeaderPosition is the message's position in the log it was relayed from.
	HeaderPosition = "Agora-Position"
	// HeaderCorrelation ties together every message caused by one request.
	HeaderCorrelation = "Agora-Correlation-Id"
	// HeaderCausation is the ID of the message that caused this one.
	HeaderCausation = "Agora-Causation-Id"
	// HeaderTenant is the tenant the message belongs to.
	HeaderTenant = "Agora-Tenant"
	// HeaderUser is the user whose request caused the message.
	HeaderUser = "Agora-User"
	// HeaderTraceParent is the W3C trace context of what caused the message.
	HeaderTraceParent = "traceparent"
)

// SetMetadata adds the headers that carry m (correlation, causation,
// tenant, user, trace context) to h, leaving those h already has.
func SetMetadata(h map[string]string, m eventstore.Metadata) {
	setIf(h, HeaderCorrelation, m.CorrelationID)
	setIf(h, HeaderCausation, m.CausationID)
	setIf(h, HeaderTenant, m.Tenant)
	setIf(h, HeaderUser, m.User)
	setIf(h, HeaderTraceParent, m.TraceParent)
}

func setIf(h map[string]string, k, v string) {
	if _, ok := h[k]; !ok && v != "" {
		h[k] = v
	}
}

// MetadataOf is the event metadata of what a delivery causes: the
// delivery's correlation, tenant, user and trace context, and the
// delivery itself as causation.
func MetadataOf(d Delivery) eventstore.Metadata {
	tp := d.Headers[HeaderTraceParent]
	if tp == "" {
		for k, v := range d.Headers { // NATS headers keep their case
			if strings.EqualFold(k, HeaderTraceParent) {
				tp = v
			}
		}
	}
	return eventstore.Metadata{CorrelationID: d.Headers[HeaderCorrelation], CausationID: d.ID,
		Tenant: d.Headers[HeaderTenant], User: d.Headers[HeaderUser], TraceParent: tp}
}

// Message is an integration event or a command on the bus.
type Message struct {
	// ID identifies the message: the broker's de-duplication key and the
	// inbox's key. A relayed event's ID is the event's ID.
	ID string
	// Subject routes the message, e.g. "payments.account.opened". The bus
	// may prefix it with its namespace.
	Subject string
	// Type names the message's schema, e.g. "payments.AccountOpened.v1".
	Type string
	// Data is the body, a JSON document.
	Data json.RawMessage
	// Headers carry correlation, causation and tenant (HeaderX keys).
	Headers map[string]string
}

// Publisher publishes messages.
type Publisher interface {
	// Publish returns once the broker has accepted every message (or an
	// error, after which any of them may or may not have been accepted:
	// publish them again; the broker drops repeats by ID).
	Publish(ctx context.Context, msgs ...Message) error
}

// Delivery is a message handed to a consumer.
type Delivery struct {
	Message
	// Attempt counts deliveries of this message to this consumer, from 1.
	Attempt int
}

// Handler processes one delivery. Returning nil acknowledges it; an error
// has it redelivered later, unless it wraps ErrPermanent, which drops it
// (after logging) because no retry can succeed.
type Handler func(ctx context.Context, d Delivery) error

// ErrPermanent marks a handler error that redelivery cannot fix.
var ErrPermanent = errors.New("messaging: permanent failure")

// Consumer describes a durable consumer.
type Consumer struct {
	// Name is the durable name: deliveries resume where it left off.
	Name string
	// Stream is the stream to consume.
	Stream string
	// Subjects filter the stream (all of it if empty).
	Subjects []string
	// MaxDeliver caps deliveries of one message (default: unlimited).
	MaxDeliver int
	// AckWait is how long a delivery may stay unacknowledged before it is
	// redelivered (default 30s).
	AckWait time.Duration
	// Concurrency is how many deliveries are handled at once (default 1,
	// which keeps the stream's order).
	Concurrency int
	// InFlight caps the deliveries of a durable consumer not yet
	// acknowledged, across every subscriber of its Name (default: at
	// least 1000). With 1, the next message is delivered only once the
	// one before it was acknowledged (or dropped as permanently failed):
	// the stream is handled strictly in order even when several
	// processes subscribe, and a handler failure holds back what follows
	// until its redelivery succeeds. It applies when the broker creates
	// the consumer.
	InFlight int
	// Ephemeral makes a consumer of this subscriber alone: it gets every
	// message published after it starts, whatever other subscribers of
	// the same Name get, and the broker forgets it soon after it stops.
	// For work every instance must do, such as invalidating its cache.
	Ephemeral bool
}

// Subscriber runs durable consumers.
type Subscriber interface {
	// Subscribe handles deliveries until ctx ends.
	Subscribe(ctx context.Context, c Consumer, h Handler) error
}

// Keep runs consumer c on s until ctx ends, subscribing again (after a
// backoff of 100 ms doubling to 5 s) whenever the subscription stops.
func Keep(ctx context.Context, s Subscriber, c Consumer, h Handler, log *slog.Logger) error {
	for attempt := 1; ; attempt++ {
		err := s.Subscribe(ctx, c, h)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Error("consumer stopped; restarting", "consumer", c.Name, "err", err)
		if err := backoff.Sleep(ctx, backoff.Delay(100*time.Millisecond, 5*time.Second, attempt)); err != nil {
			return err
		}
	}
}

// eventIDSpace is the UUIDv5 namespace of EventID.
var eventIDSpace = uuid.MustParse("6f1c3c4e-5b8e-4b7e-9c1e-2a4e0b7c9d10")

// EventID derives the ID of the i-th event an effect of message msgID
// appends. Appending the same IDs again is a no-op in the event store, so
// an event-sourced handler that uses them is idempotent under redelivery.
func EventID(msgID string, i int) uuid.UUID {
	return uuid.NewSHA1(eventIDSpace, []byte(msgID+"/"+strconv.Itoa(i)))
}

// NewMessage returns a message of type typ on subject with v as its JSON
// body (ID and headers are left for the caller or the relay to fill).
func NewMessage(subject, typ string, v any) (Message, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Message{}, err
	}
	return Message{Subject: subject, Type: typ, Data: b}, nil
}

// Decode unmarshals a message body into T.
func Decode[T any](m Message) (T, error) {
	var v T
	err := json.Unmarshal(m.Data, &v)
	return v, err
}
