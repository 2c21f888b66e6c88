package aggregate

import (
	"encoding/json"
	"fmt"

	"github.com/agora-commerce/agora/eventstore"
)

// Named is an event that knows its stored type name.
type Named interface {
	// EventType is the stored type name, e.g. "inventory.StockReserved".
	EventType() string
}

// Codec stores events of the interface type E as JSON, keyed by their
// EventType. Register each concrete event type once; Encode and Decode fit
// Type.Encode and Type.Decode.
type Codec[E Named] struct {
	decode map[string]func(json.RawMessage) (E, error)
}

// NewCodec returns an empty codec for events of type E.
func NewCodec[E Named]() *Codec[E] {
	return &Codec[E]{decode: map[string]func(json.RawMessage) (E, error){}}
}

// Register adds the concrete event type T (which must implement E) to c.
func Register[T Named, E Named](c *Codec[E]) {
	var zero T
	if _, ok := any(zero).(E); !ok {
		panic(fmt.Sprintf("aggregate: %T does not implement the codec's event type", zero))
	}
	c.decode[zero.EventType()] = func(b json.RawMessage) (E, error) {
		var t T
		err := json.Unmarshal(b, &t)
		return any(t).(E), err
	}
}

// Encode stores e as JSON with its EventType, schema version 1.
func (c *Codec[E]) Encode(e E) (eventstore.EventData, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return eventstore.EventData{}, err
	}
	return eventstore.EventData{Type: e.EventType(), SchemaVersion: 1, Data: b}, nil
}

// Decode turns a stored record back into its registered event type.
func (c *Codec[E]) Decode(r eventstore.Record) (E, error) {
	d, ok := c.decode[r.Type]
	if !ok {
		var zero E
		return zero, fmt.Errorf("aggregate: unknown event type %q", r.Type)
	}
	e, err := d(r.Data)
	if err != nil {
		return e, fmt.Errorf("aggregate: decode %s: %w", r.Type, err)
	}
	return e, nil
}

// Knows reports whether c decodes events of type name.
func (c *Codec[E]) Knows(name string) bool { _, ok := c.decode[name]; return ok }
