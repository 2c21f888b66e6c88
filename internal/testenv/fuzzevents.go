package testenv

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
)

// FuzzEvents is the body of a context's event-decoding fuzz target: each
// input is stored data of one of types (the codec's registered event
// types, chosen by the input's number; a number past them picks a type
// the codec does not know). Decoding it must not panic and must refuse
// the unknown type; an event it decodes must fold (Evolve) into the
// initial state and into the state after samples without panicking, and
// encode to data that, when it decodes, encodes the same again. samples
// (valid events, in an order that makes sense) seed the corpus.
func FuzzEvents[S, E any](f *testing.F, typ aggregate.Type[S, E], types []string, samples ...E) {
	f.Helper()
	lived := typ.Initial()
	for _, e := range samples {
		d, err := typ.Encode(e)
		if err != nil {
			f.Fatal(err)
		}
		for i, name := range types {
			if name == d.Type {
				f.Add(uint8(i), []byte(d.Data))
			}
		}
		lived = typ.Evolve(lived, e)
	}
	for _, s := range []string{`{}`, `null`, `[]`, `{"at":"not a time"}`, `{"quantity":-9223372036854775808}`} {
		f.Add(uint8(0), []byte(s))
		f.Add(uint8(len(types)), []byte(s))
	}
	f.Fuzz(func(t *testing.T, n uint8, data []byte) {
		name := "unknown.Event"
		if int(n) < len(types) {
			name = types[n]
		}
		r := eventstore.Record{Type: name, SchemaVersion: 1, StreamID: typ.StreamID("fuzz"), Version: 1, Position: 1, Data: json.RawMessage(data)}
		e, err := typ.Decode(r)
		if int(n) >= len(types) {
			if err == nil {
				t.Fatalf("decoded an event of unknown type %q", name)
			}
			return
		}
		if err != nil {
			return
		}
		typ.Evolve(typ.Initial(), e)
		typ.Evolve(lived, e)
		d, err := typ.Encode(e)
		if err != nil {
			t.Fatalf("%s %q decoded to %+v, which does not encode: %v", name, data, e, err)
		}
		if d.Type != name {
			t.Fatalf("%s decoded to an event of type %s", name, d.Type)
		}
		back, err := typ.Decode(eventstore.Record{Type: d.Type, SchemaVersion: d.SchemaVersion, Data: d.Data})
		if err != nil {
			// A field the decoder left at its zero value may encode as
			// what it refuses (a money.Currency as ""): no event the
			// domain decides has one.
			return
		}
		d2, err := typ.Encode(back)
		if err != nil || !bytes.Equal(d2.Data, d.Data) {
			t.Fatalf("%s %q: encodes to %s, then to %s (%v)", name, data, d.Data, d2.Data, err)
		}
	})
}
