package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
)

// Upcaster turns the data of one (type, schema version) into the data of
// the next schema version. It must be a pure function.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

type upcastKey struct {
	typ     string
	version int
}

// Upcasters is a registry of upcasters keyed by event type and the schema
// version they read. Register them at start-up; reads are then safe for
// concurrent use.
type Upcasters struct {
	m map[upcastKey]Upcaster
}

// Register adds an upcaster from schema version from of typ to from+1.
func (u *Upcasters) Register(typ string, from int, f Upcaster) {
	if u.m == nil {
		u.m = make(map[upcastKey]Upcaster)
	}
	u.m[upcastKey{typ, from}] = f
}

// Upcast applies upcasters to r until none is registered for its current
// (type, schema version). Records are returned unchanged when no upcaster
// applies.
func (u *Upcasters) Upcast(r Record) (Record, error) {
	if u == nil || len(u.m) == 0 {
		return r, nil
	}
	for i := 0; i < 1000; i++ {
		f, ok := u.m[upcastKey{r.Type, r.SchemaVersion}]
		if !ok {
			return r, nil
		}
		data, err := f(r.Data)
		if err != nil {
			return r, fmt.Errorf("eventstore: upcast %s v%d at position %d: %w", r.Type, r.SchemaVersion, r.Position, err)
		}
		r.Data = data
		r.SchemaVersion++
	}
	return r, fmt.Errorf("eventstore: upcast %s: too many steps", r.Type)
}

func (u *Upcasters) upcastAll(recs []Record) ([]Record, error) {
	for i := range recs {
		r, err := u.Upcast(recs[i])
		if err != nil {
			return nil, err
		}
		recs[i] = r
	}
	return recs, nil
}

// WithUpcasters returns a Store whose reads pass every record through u.
// Appends and snapshots go to s unchanged.
func WithUpcasters(s Store, u *Upcasters) Store {
	return upcastingStore{Store: s, u: u}
}

type upcastingStore struct {
	Store
	u *Upcasters
}

func (s upcastingStore) ReadStream(ctx context.Context, streamID string, r StreamRead) ([]Record, error) {
	recs, err := s.Store.ReadStream(ctx, streamID, r)
	if err != nil {
		return nil, err
	}
	return s.u.upcastAll(recs)
}

func (s upcastingStore) ReadAll(ctx context.Context, after uint64, limit int) ([]Record, error) {
	recs, err := s.Store.ReadAll(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	return s.u.upcastAll(recs)
}
