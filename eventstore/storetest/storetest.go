// Package storetest is the conformance suite every eventstore.Store
// implementation must pass, in the manner of testing/fstest. A store's own
// test calls Run with a constructor that returns a fresh, empty store.
//
// The suite includes a torture test: 64 concurrent writers append over
// many streams while a subscriber follows the log; the subscriber must see
// every event exactly once, in position order, with every stream's
// versions in order. It appends Options.TortureEvents events (100,000 by
// default); the -long flag multiplies it by ten (1,000,000 by default) and
// AGORA_TORTURE_EVENTS sets it.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/eventstore"
)

var long = flag.Bool("long", false, "storetest: run the torture test with ten times the events (1,000,000 by default)")

// Options tune the suite.
type Options struct {
	// TortureEvents is how many events the torture test appends; 0 means
	// 100,000. -long multiplies it by ten; AGORA_TORTURE_EVENTS replaces it.
	TortureEvents int
}

// Factory returns a new, empty store. The suite closes it.
type Factory func(t *testing.T) eventstore.Store

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, newStore Factory, opts Options) {
	tests := []struct {
		name string
		fn   func(*testing.T, eventstore.Store)
	}{
		{"AppendAndReadStream", testAppendAndRead},
		{"ExpectedVersion", testExpectedVersion},
		{"Idempotency", testIdempotency},
		{"InvalidEvents", testInvalid},
		{"ReadBackward", testReadBackward},
		{"ReadAllBatches", testReadAll},
		{"ConcurrentSameStream", testConcurrentSameStream},
		{"ConflictDoesNotFailOthers", testConflictIsolation},
		{"SubscribeCatchUpThenLive", testSubscribe},
		{"WaitForAppend", testWaitForAppend},
		{"Snapshots", testSnapshots},
		{"Upcasters", testUpcasters},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
	t.Run("Torture", func(t *testing.T) {
		n := opts.TortureEvents
		if n <= 0 {
			n = 100_000
		}
		if *long {
			n *= 10
		}
		if v, err := strconv.Atoi(os.Getenv("AGORA_TORTURE_EVENTS")); err == nil && v > 0 {
			n = v
		}
		s := newStore(t)
		defer s.Close()
		Torture(t, s, 64, n)
	})
}

func ev(typ string, data any) eventstore.EventData {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return eventstore.EventData{Type: typ, Data: b}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, s eventstore.Store, stream string, exp eventstore.ExpectedVersion, evs ...eventstore.EventData) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(ctxT(t), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func testAppendAndRead(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	meta := eventstore.Metadata{Tenant: "acme", CorrelationID: "corr-1", CausationID: "cause-1", User: "u1", TraceParent: "00-abc-def-01"}
	e1 := ev("Opened", map[string]int{"n": 1})
	e1.Metadata = meta
	e2 := ev("Deposited", map[string]int{"n": 2})
	e2.SchemaVersion = 3
	before := time.Now().Add(-time.Minute)
	res := mustAppend(t, s, "acc-1", eventstore.NoStream, e1, e2)
	if res.NextExpectedVersion != 2 || res.LastPosition != res.FirstPosition+1 || res.FirstPosition == 0 {
		t.Fatalf("result = %+v", res)
	}
	res2 := mustAppend(t, s, "acc-2", eventstore.Any, ev("Opened", nil))
	if res2.FirstPosition <= res.LastPosition {
		t.Fatalf("positions not increasing: %+v then %+v", res, res2)
	}
	recs, err := s.ReadStream(ctx, "acc-1", eventstore.StreamRead{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("read %d records, want 2", len(recs))
	}
	r := recs[0]
	if r.StreamID != "acc-1" || r.Version != 1 || r.Type != "Opened" || r.SchemaVersion != 1 || r.Position != res.FirstPosition {
		t.Fatalf("record 0 = %+v", r)
	}
	if r.Metadata != meta {
		t.Fatalf("metadata = %+v, want %+v", r.Metadata, meta)
	}
	if r.ID.Version() != 7 {
		t.Fatalf("assigned ID %s is not a UUIDv7", r.ID)
	}
	if r.RecordedAt.Before(before) || r.RecordedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("recorded at %v", r.RecordedAt)
	}
	var d map[string]int
	if err := json.Unmarshal(recs[1].Data, &d); err != nil || d["n"] != 2 {
		t.Fatalf("data = %s (%v)", recs[1].Data, err)
	}
	if recs[1].Version != 2 || recs[1].SchemaVersion != 3 {
		t.Fatalf("record 1 = %+v", recs[1])
	}
	empty, err := s.ReadStream(ctx, "nope", eventstore.StreamRead{})
	if err != nil || len(empty) != 0 {
		t.Fatalf("missing stream: %v, %d records", err, len(empty))
	}
	from2, err := s.ReadStream(ctx, "acc-1", eventstore.StreamRead{From: 2})
	if err != nil || len(from2) != 1 || from2[0].Version != 2 {
		t.Fatalf("read from 2: %v %+v", err, from2)
	}
	head, err := s.Head(ctx)
	if err != nil || head != res2.LastPosition {
		t.Fatalf("head = %d, %v; want %d", head, err, res2.LastPosition)
	}
}

func wantConflict(t *testing.T, err error, actual uint64) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrConcurrency) {
		t.Fatalf("err = %v, want ErrConcurrency", err)
	}
	var ce *eventstore.ConcurrencyError
	if !errors.As(err, &ce) {
		t.Fatalf("err %T is not a *ConcurrencyError", err)
	}
	if ce.Actual != actual {
		t.Fatalf("actual version = %d, want %d", ce.Actual, actual)
	}
}

func testExpectedVersion(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	_, err := s.Append(ctx, "s", eventstore.StreamExists, ev("A", nil))
	wantConflict(t, err, 0)
	_, err = s.Append(ctx, "s", eventstore.Exact(3), ev("A", nil))
	wantConflict(t, err, 0)
	mustAppend(t, s, "s", eventstore.NoStream, ev("A", nil))
	_, err = s.Append(ctx, "s", eventstore.NoStream, ev("A", nil))
	wantConflict(t, err, 1)
	mustAppend(t, s, "s", eventstore.StreamExists, ev("B", nil))
	mustAppend(t, s, "s", eventstore.Exact(2), ev("C", nil), ev("D", nil))
	_, err = s.Append(ctx, "s", eventstore.Exact(2), ev("E", nil))
	wantConflict(t, err, 4)
	res := mustAppend(t, s, "s", eventstore.Any, ev("F", nil))
	if res.NextExpectedVersion != 5 {
		t.Fatalf("next version = %d, want 5", res.NextExpectedVersion)
	}
	recs, _ := s.ReadStream(ctx, "s", eventstore.StreamRead{})
	if len(recs) != 5 {
		t.Fatalf("stream has %d events after failed appends, want 5", len(recs))
	}
}

func testIdempotency(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	a, b := ev("A", nil), ev("B", nil)
	a.ID, b.ID = uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	first := mustAppend(t, s, "idem", eventstore.NoStream, a, b)
	again, err := s.Append(ctx, "idem", eventstore.NoStream, a, b)
	if err != nil {
		t.Fatalf("re-append: %v", err)
	}
	if again != first {
		t.Fatalf("re-append result %+v, want %+v", again, first)
	}
	again, err = s.Append(ctx, "idem", eventstore.Any, a, b)
	if err != nil || again != first {
		t.Fatalf("re-append with any: %+v, %v", again, err)
	}
	head, _ := s.Head(ctx)
	if head != first.LastPosition {
		t.Fatalf("re-append wrote: head %d, want %d", head, first.LastPosition)
	}
	c := ev("C", nil)
	_, err = s.Append(ctx, "idem", eventstore.Any, a, c)
	if !errors.Is(err, eventstore.ErrDuplicateEvent) {
		t.Fatalf("partial re-append: err = %v, want ErrDuplicateEvent", err)
	}
	_, err = s.Append(ctx, "other", eventstore.Any, a)
	if !errors.Is(err, eventstore.ErrDuplicateEvent) {
		t.Fatalf("same ID in another stream: err = %v, want ErrDuplicateEvent", err)
	}
	recs, _ := s.ReadStream(ctx, "idem", eventstore.StreamRead{})
	if len(recs) != 2 {
		t.Fatalf("stream has %d events, want 2", len(recs))
	}
}

func testInvalid(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	cases := map[string]struct {
		stream string
		evs    []eventstore.EventData
	}{
		"empty stream": {"", []eventstore.EventData{ev("A", nil)}},
		"no events":    {"s", nil},
		"no type":      {"s", []eventstore.EventData{{Data: json.RawMessage(`{}`)}}},
		"bad json":     {"s", []eventstore.EventData{{Type: "A", Data: json.RawMessage(`{nope`)}}},
		"dup ids": {"s", func() []eventstore.EventData {
			e := ev("A", nil)
			e.ID = uuid.Must(uuid.NewV7())
			return []eventstore.EventData{e, e}
		}()},
	}
	for name, c := range cases {
		if _, err := s.Append(ctx, c.stream, eventstore.Any, c.evs...); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
	if head, _ := s.Head(ctx); head != 0 {
		t.Fatalf("invalid appends wrote: head = %d", head)
	}
}

func testReadBackward(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	var evs []eventstore.EventData
	for i := 0; i < 10; i++ {
		evs = append(evs, ev("N", i))
	}
	mustAppend(t, s, "b", eventstore.NoStream, evs...)
	recs, err := s.ReadStream(ctx, "b", eventstore.StreamRead{Direction: eventstore.Backward, Limit: 3})
	if err != nil || len(recs) != 3 || recs[0].Version != 10 || recs[2].Version != 8 {
		t.Fatalf("backward from end: %v %v", err, versions(recs))
	}
	recs, err = s.ReadStream(ctx, "b", eventstore.StreamRead{Direction: eventstore.Backward, From: 4})
	if err != nil || len(recs) != 4 || recs[0].Version != 4 || recs[3].Version != 1 {
		t.Fatalf("backward from 4: %v %v", err, versions(recs))
	}
	recs, err = s.ReadStream(ctx, "b", eventstore.StreamRead{From: 5, Limit: 2})
	if err != nil || len(recs) != 2 || recs[0].Version != 5 || recs[1].Version != 6 {
		t.Fatalf("forward from 5: %v %v", err, versions(recs))
	}
}

func versions(recs []eventstore.Record) []uint64 {
	var v []uint64
	for _, r := range recs {
		v = append(v, r.Version)
	}
	return v
}

func testReadAll(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	for i := 0; i < 25; i++ {
		mustAppend(t, s, fmt.Sprintf("r-%d", i%4), eventstore.Any, ev("N", i))
	}
	var got []eventstore.Record
	after := uint64(0)
	for {
		recs, err := s.ReadAll(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 7 {
			t.Fatalf("batch of %d > limit 7", len(recs))
		}
		if len(recs) == 0 {
			break
		}
		got = append(got, recs...)
		after = recs[len(recs)-1].Position
	}
	if len(got) != 25 {
		t.Fatalf("read %d events, want 25", len(got))
	}
	for i, r := range got {
		var n int
		_ = json.Unmarshal(r.Data, &n)
		if n != i || (i > 0 && r.Position <= got[i-1].Position) {
			t.Fatalf("event %d: n=%d pos=%d", i, n, r.Position)
		}
	}
}

func testConcurrentSameStream(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	mustAppend(t, s, "race", eventstore.NoStream, ev("Start", nil))
	const workers = 16
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append(ctx, "race", eventstore.Exact(1), ev("Next", nil))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, eventstore.ErrConcurrency):
				conflicts.Add(1)
			default:
				t.Errorf("append: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != workers-1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and %d", wins.Load(), conflicts.Load(), workers-1)
	}
}

func testConflictIsolation(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			exp := eventstore.NoStream
			if i%2 == 1 {
				exp = eventstore.StreamExists // always fails: the stream is new
			}
			_, errs[i] = s.Append(ctx, fmt.Sprintf("iso-%d", i), exp, ev("E", i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			t.Fatalf("good append %d failed: %v", i, err)
		}
		if i%2 == 1 {
			wantConflict(t, err, 0)
		}
	}
	recs, _ := s.ReadAll(ctx, 0, 1000)
	if len(recs) != n/2 {
		t.Fatalf("log has %d events, want %d", len(recs), n/2)
	}
}

func testSubscribe(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	for i := 0; i < 50; i++ {
		mustAppend(t, s, "sub", eventstore.Any, ev("N", i))
	}
	got := make(chan eventstore.Record, 1000)
	done := make(chan error, 1)
	go func() {
		done <- eventstore.Subscribe(ctx, s, 0, 16, func(_ context.Context, b []eventstore.Record) error {
			for _, r := range b {
				got <- r
			}
			return nil
		})
	}()
	go func() {
		for i := 50; i < 100; i++ {
			if _, err := s.Append(ctx, "sub", eventstore.Any, ev("N", i)); err != nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	}()
	for i := 0; i < 100; i++ {
		select {
		case r := <-got:
			var n int
			_ = json.Unmarshal(r.Data, &n)
			if n != i || r.Version != uint64(i+1) {
				t.Fatalf("event %d: got n=%d version=%d", i, n, r.Version)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber stalled after %d events", i)
		}
	}
	select {
	case r := <-got:
		t.Fatalf("extra event delivered: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v, want context.Canceled", err)
	}
}

func testWaitForAppend(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.WaitForAppend(short, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on empty store: %v, want deadline", err)
	}
	woke := make(chan error, 1)
	go func() { woke <- s.WaitForAppend(ctx, 0) }()
	time.Sleep(20 * time.Millisecond)
	mustAppend(t, s, "w", eventstore.Any, ev("A", nil))
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitForAppend did not wake on append")
	}
}

func testSnapshots(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	if _, ok, err := s.LoadSnapshot(ctx, "snap"); ok || err != nil {
		t.Fatalf("missing snapshot: ok=%v err=%v", ok, err)
	}
	s1 := eventstore.Snapshot{StreamID: "snap", Version: 10, StateVersion: 1, State: json.RawMessage(`{"b":1}`)}
	if err := s.SaveSnapshot(ctx, s1); err != nil {
		t.Fatal(err)
	}
	s2 := eventstore.Snapshot{StreamID: "snap", Version: 20, StateVersion: 2, State: json.RawMessage(`{"b":2}`)}
	if err := s.SaveSnapshot(ctx, s2); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.LoadSnapshot(ctx, "snap")
	if err != nil || !ok || got.Version != 20 || got.StateVersion != 2 || string(got.State) != `{"b":2}` || got.StreamID != "snap" {
		t.Fatalf("snapshot = %+v ok=%v err=%v", got, ok, err)
	}
}

func testUpcasters(t *testing.T, s eventstore.Store) {
	ctx := ctxT(t)
	var u eventstore.Upcasters
	u.Register("Renamed", 1, func(d json.RawMessage) (json.RawMessage, error) {
		var v struct{ Name string }
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]string{"first": v.Name})
	})
	u.Register("Renamed", 2, func(d json.RawMessage) (json.RawMessage, error) {
		var v map[string]string
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		v["last"] = "?"
		return json.Marshal(v)
	})
	mustAppend(t, s, "up", eventstore.Any, ev("Renamed", map[string]string{"Name": "Ada"}))
	us := eventstore.WithUpcasters(s, &u)
	for _, read := range []func() ([]eventstore.Record, error){
		func() ([]eventstore.Record, error) { return us.ReadStream(ctx, "up", eventstore.StreamRead{}) },
		func() ([]eventstore.Record, error) { return us.ReadAll(ctx, 0, 10) },
	} {
		recs, err := read()
		if err != nil || len(recs) != 1 {
			t.Fatalf("read: %v %d", err, len(recs))
		}
		if recs[0].SchemaVersion != 3 || string(recs[0].Data) != `{"first":"Ada","last":"?"}` {
			t.Fatalf("upcast record: v%d %s", recs[0].SchemaVersion, recs[0].Data)
		}
	}
	raw, _ := s.ReadStream(ctx, "up", eventstore.StreamRead{})
	if raw[0].SchemaVersion != 1 {
		t.Fatalf("stored record changed: v%d", raw[0].SchemaVersion)
	}
}

func testClosed(t *testing.T, s eventstore.Store) {
	mustAppend(t, s, "c", eventstore.Any, ev("A", nil))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), "c", eventstore.Any, ev("A", nil)); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
}

// Torture appends total events from writers goroutines over many streams
// (each writer owns 32 streams and appends 1–3 events at a time with an
// exact expected version) while a subscriber follows the log. It fails t
// unless the subscriber sees every event exactly once, in position order,
// with every stream's versions consecutive.
func Torture(t *testing.T, s eventstore.Store, writers, total int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	type seen struct {
		count   int
		lastPos uint64
		version map[string]uint64
	}
	st := seen{version: make(map[string]uint64)}
	subDone := make(chan error, 1)
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	reached := make(chan struct{})
	go func() {
		subDone <- eventstore.Subscribe(subCtx, s, 0, 2000, func(_ context.Context, b []eventstore.Record) error {
			for _, r := range b {
				if r.Position <= st.lastPos {
					return fmt.Errorf("position %d after %d: out of order or duplicate", r.Position, st.lastPos)
				}
				st.lastPos = r.Position
				if want := st.version[r.StreamID] + 1; r.Version != want {
					return fmt.Errorf("stream %s: version %d, want %d (position %d)", r.StreamID, r.Version, want, r.Position)
				}
				st.version[r.StreamID] = r.Version
				st.count++
			}
			if st.count == total {
				close(reached)
			}
			if st.count > total {
				return fmt.Errorf("saw %d events, more than %d appended", st.count, total)
			}
			return nil
		})
	}()

	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			const streams = 32
			vers := make([]uint64, streams)
			for i := 0; ; i++ {
				k := 1 + i%3
				lo := next.Add(int64(k)) - int64(k)
				if lo >= int64(total) {
					return
				}
				if lo+int64(k) > int64(total) {
					k = int(int64(total) - lo)
				}
				evs := make([]eventstore.EventData, k)
				for j := range evs {
					evs[j] = eventstore.EventData{Type: "Tortured", Data: json.RawMessage(`{"w":` + strconv.Itoa(w) + `,"n":` + strconv.FormatInt(lo+int64(j), 10) + `}`)}
				}
				sid := i % streams
				stream := fmt.Sprintf("torture-%d-%d", w, sid)
				res, err := s.Append(ctx, stream, eventstore.Exact(vers[sid]), evs...)
				if err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				vers[sid] = res.NextExpectedVersion
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	appended := time.Since(start)
	select {
	case <-reached:
	case err := <-subDone:
		t.Fatalf("subscriber stopped: %v", err)
	case <-ctx.Done():
		t.Fatalf("subscriber saw %d of %d events before timeout", st.count, total)
	}
	// Give a wrongly duplicating store a chance to show it.
	if head, err := s.Head(ctx); err != nil || head < uint64(total) {
		t.Fatalf("head = %d, %v", head, err)
	}
	stopSub()
	if err := <-subDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("subscriber: %v", err)
	}
	if st.count != total {
		t.Fatalf("subscriber saw %d events, want %d", st.count, total)
	}
	t.Logf("torture: %d events by %d writers in %v (%.0f events/s), subscriber done after %v",
		total, writers, appended.Round(time.Millisecond), float64(total)/appended.Seconds(), time.Since(start).Round(time.Millisecond))
}
