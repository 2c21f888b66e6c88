// Package eventstore defines Agora's event store contract: records, appends
// with optimistic concurrency, stream and global-log reads, subscriptions,
// snapshots and upcasters.
//
// Implementations live in sub-packages (eventstore/sqlite for the embedded
// engine, eventstore/postgres for the distributed one) and all pass the
// conformance suite in eventstore/storetest.
//
// Positions and versions:
//   - Every event has a global Position in the store's log ("$all"). Positions
//     start at 1, increase strictly in commit order and are never reused, so a
//     reader that has processed position p may ask for "everything after p"
//     and will never miss an event committed later.
//   - Every event has a stream Version. The first event of a stream has
//     version 1; a stream's version is the number of events in it.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Metadata travels with every event. It is stored as JSON next to the data.
type Metadata struct {
	// Tenant is the tenant the event belongs to.
	Tenant string `json:"tenant,omitempty"`
	// CorrelationID ties together every message caused by one request.
	CorrelationID string `json:"correlation_id,omitempty"`
	// CausationID is the ID of the message (command or event) that caused this one.
	CausationID string `json:"causation_id,omitempty"`
	// User is the ID of the user on whose behalf the event was recorded.
	User string `json:"user,omitempty"`
	// TraceParent is a W3C trace context header value.
	TraceParent string `json:"traceparent,omitempty"`
}

// EventData is an event to append: what the caller provides.
type EventData struct {
	// ID identifies the event. If zero, Append assigns a new UUIDv7.
	// Appending the same IDs to the same stream again is idempotent.
	ID uuid.UUID
	// Type names the event, e.g. "payments.MoneyDeposited".
	Type string
	// SchemaVersion is the version of Data's shape (1 if zero).
	SchemaVersion int
	// Data is the event body, a JSON document.
	Data json.RawMessage
	// Metadata is stored with the event.
	Metadata Metadata
}

// Record is a stored event: what readers get.
type Record struct {
	// Position is the event's place in the global log, starting at 1.
	Position uint64
	// StreamID names the stream the event belongs to.
	StreamID string
	// Version is the event's place in its stream, starting at 1.
	Version uint64
	// ID is the event's unique ID (UUIDv7 unless the caller chose another).
	ID uuid.UUID
	// Type names the event.
	Type string
	// SchemaVersion is the version of Data's shape.
	SchemaVersion int
	// Data is the event body.
	Data json.RawMessage
	// Metadata is the event's metadata.
	Metadata Metadata
	// RecordedAt is when the store accepted the event (UTC).
	RecordedAt time.Time
}

// ExpectedVersion is the optimistic-concurrency condition of an append.
// Use Any, NoStream, StreamExists or Exact(n).
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version.
	Any ExpectedVersion = -1
	// NoStream appends only if the stream has no events yet.
	NoStream ExpectedVersion = 0
	// StreamExists appends only if the stream has at least one event.
	StreamExists ExpectedVersion = -2
)

// Exact appends only if the stream's version is exactly v (Exact(0) is NoStream).
func Exact(v uint64) ExpectedVersion { return ExpectedVersion(v) }

// String renders the condition for errors and logs.
func (e ExpectedVersion) String() string {
	switch e {
	case Any:
		return "any"
	case NoStream:
		return "no stream"
	case StreamExists:
		return "stream exists"
	default:
		return fmt.Sprintf("%d", int64(e))
	}
}

// Check reports whether a stream at version actual satisfies e.
func (e ExpectedVersion) Check(actual uint64) bool {
	switch {
	case e == Any:
		return true
	case e == StreamExists:
		return actual > 0
	case e >= 0:
		return uint64(e) == actual
	default:
		return false
	}
}

// AppendResult tells where an append's events landed.
type AppendResult struct {
	// FirstPosition and LastPosition bound the appended events' positions.
	FirstPosition, LastPosition uint64
	// NextExpectedVersion is the stream's version after the append.
	NextExpectedVersion uint64
}

// Direction is the order of a stream read.
type Direction int

const (
	// Forward reads from lower to higher versions.
	Forward Direction = iota
	// Backward reads from higher to lower versions.
	Backward
)

// StreamRead describes a stream read.
type StreamRead struct {
	// Direction of the read; Forward by default.
	Direction Direction
	// From is the first version to return: inclusive. For Forward, 0 means
	// from the start; for Backward, 0 means from the end.
	From uint64
	// Limit caps the number of records; 0 means DefaultReadLimit.
	Limit int
}

// DefaultReadLimit is the batch size used when a read gives no limit.
const DefaultReadLimit = 1000

// MaxEventsPerAppend bounds how many events one Append may carry.
const MaxEventsPerAppend = 10000

// Snapshot is a saved state of a stream at a version. StateVersion
// identifies the shape of State so that a changed shape is ignored rather
// than mis-read.
type Snapshot struct {
	// StreamID is the stream the snapshot summarises.
	StreamID string
	// Version is the stream version the state includes.
	Version uint64
	// StateVersion is the version of State's shape.
	StateVersion int
	// State is the serialized state.
	State json.RawMessage
}

// Store is the event store contract. Every method is safe for concurrent use.
type Store interface {
	// Append writes events to a stream if expected holds, atomically and
	// durably: it returns only once the events are on stable storage.
	// A failed condition returns a *ConcurrencyError (errors.Is
	// ErrConcurrency). Re-appending events whose IDs are already the
	// stream's events returns the original result and writes nothing.
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
	// ReadStream reads one stream's events. A stream with no events returns
	// an empty slice and no error.
	ReadStream(ctx context.Context, streamID string, r StreamRead) ([]Record, error)
	// ReadAll returns up to limit events of the global log whose position is
	// greater than after, in position order.
	ReadAll(ctx context.Context, after uint64, limit int) ([]Record, error)
	// Head returns the highest position a reader can see.
	Head(ctx context.Context) (uint64, error)
	// WaitForAppend blocks until Head may exceed after, or ctx ends. It may
	// return early (callers re-read); it never sleeps past a commit.
	WaitForAppend(ctx context.Context, after uint64) error
	// SaveSnapshot stores a snapshot, replacing an older one of the stream.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stream's snapshot; ok is false if there is none.
	LoadSnapshot(ctx context.Context, streamID string) (s Snapshot, ok bool, err error)
	// Ping checks that the storage is reachable.
	Ping(ctx context.Context) error
	// Close releases resources; pending appends fail with ErrClosed.
	Close() error
}

// Errors returned by stores. Check them with errors.Is.
var (
	// ErrConcurrency reports that an append's expected version did not hold.
	// The concrete error is a *ConcurrencyError.
	ErrConcurrency = errors.New("eventstore: wrong expected version")
	// ErrInvalidEvent reports an event or append that breaks the contract
	// (empty type, data that is not JSON, empty stream ID, too many events).
	ErrInvalidEvent = errors.New("eventstore: invalid event")
	// ErrDuplicateEvent reports event IDs that are already stored but not as
	// the exact same append (so the append is neither new nor a retry).
	ErrDuplicateEvent = errors.New("eventstore: duplicate event ID")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("eventstore: closed")
)

// ConcurrencyError reports a failed expected-version check and carries the
// stream's actual version.
type ConcurrencyError struct {
	// StreamID is the stream appended to.
	StreamID string
	// Expected is the condition that failed.
	Expected ExpectedVersion
	// Actual is the stream's version at the time of the append.
	Actual uint64
}

// Error implements error.
func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("eventstore: stream %q: expected version %s, actual %d", e.StreamID, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrConcurrency) true.
func (e *ConcurrencyError) Is(target error) bool { return target == ErrConcurrency }

// Prepare validates events before an append and fills in defaults: a new
// UUIDv7 for a zero ID, schema version 1 for zero. Stores call it; it is
// exported so that other implementations can share the rules.
func Prepare(streamID string, events []EventData) error {
	if streamID == "" {
		return fmt.Errorf("%w: empty stream ID", ErrInvalidEvent)
	}
	if len(streamID) > 512 {
		return fmt.Errorf("%w: stream ID longer than 512 bytes", ErrInvalidEvent)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: no events", ErrInvalidEvent)
	}
	if len(events) > MaxEventsPerAppend {
		return fmt.Errorf("%w: %d events in one append (max %d)", ErrInvalidEvent, len(events), MaxEventsPerAppend)
	}
	for i := range events {
		e := &events[i]
		if e.Type == "" {
			return fmt.Errorf("%w: event %d has no type", ErrInvalidEvent, i)
		}
		if e.SchemaVersion < 0 {
			return fmt.Errorf("%w: event %d has negative schema version", ErrInvalidEvent, i)
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		if len(e.Data) == 0 {
			e.Data = json.RawMessage("{}")
		} else if !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %d data is not valid JSON", ErrInvalidEvent, i)
		}
		if e.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return fmt.Errorf("eventstore: new event ID: %w", err)
			}
			e.ID = id
		}
	}
	seen := make(map[uuid.UUID]struct{}, len(events))
	for i, e := range events {
		if _, dup := seen[e.ID]; dup {
			return fmt.Errorf("%w: event %d repeats ID %s within one append", ErrInvalidEvent, i, e.ID)
		}
		seen[e.ID] = struct{}{}
	}
	return nil
}

// Observer receives store measurements; the platform feeds them to
// Prometheus. Implementations must be cheap and safe for concurrent use.
type Observer interface {
	// Committed reports one durable transaction: how many appends and
	// events it carried and how long it took from begin to durable commit.
	Committed(appends, events int, d time.Duration)
}

// NopObserver discards measurements.
type NopObserver struct{}

// Committed implements Observer.
func (NopObserver) Committed(int, int, time.Duration) {}
