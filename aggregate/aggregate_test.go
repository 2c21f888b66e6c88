package aggregate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
)

// counter is a tiny aggregate: Added events add to a total that may not
// exceed a limit.
type counter struct {
	Total int `json:"total"`
	Count int `json:"count"`
}

type added struct{ N int }

var errLimit = errors.New("limit reached")

func counterType(every uint64, stateVersion int) aggregate.Type[counter, added] {
	return aggregate.Type[counter, added]{
		Name:    "counter",
		Initial: func() counter { return counter{} },
		Evolve: func(s counter, e added) counter {
			s.Total += e.N
			s.Count++
			return s
		},
		Encode:        encodeAdded,
		Decode:        decodeAdded,
		SnapshotEvery: every,
		StateVersion:  stateVersion,
	}
}

func encodeAdded(e added) (eventstore.EventData, error) {
	b, err := json.Marshal(e)
	return eventstore.EventData{Type: "Added", Data: b}, err
}

func decodeAdded(r eventstore.Record) (added, error) {
	var e added
	err := json.Unmarshal(r.Data, &e)
	return e, err
}

func add(n, limit int) aggregate.Decide[counter, added] {
	return func(l aggregate.Loaded[counter]) ([]added, error) {
		if l.State.Total+n > limit {
			return nil, errLimit
		}
		return []added{{N: n}}, nil
	}
}

func openStore(t testing.TB) eventstore.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "es.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSnapshotAndTailEqualReplay(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	repo := aggregate.NewRepository(store, counterType(10, 1))
	for i := 1; i <= 25; i++ {
		if _, err := repo.Handle(ctx, "a", eventstore.Metadata{}, add(i, 1<<30)); err != nil {
			t.Fatal(err)
		}
	}
	snap, ok, err := store.LoadSnapshot(ctx, "counter-a")
	if err != nil || !ok || snap.Version != 20 {
		t.Fatalf("snapshot: %+v ok=%v err=%v, want version 20", snap, ok, err)
	}
	withSnap, err := repo.Load(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	replay, err := aggregate.NewRepository(store, counterType(0, 1)).Load(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if withSnap != replay || replay.Version != 25 || replay.State.Total != 325 {
		t.Fatalf("snapshot load %+v, replay %+v", withSnap, replay)
	}
}

func TestChangedStateShapeIgnoresSnapshot(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	// A snapshot whose state is of another shape: it must not be read.
	if err := store.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: "counter-b", Version: 1, StateVersion: 1, State: json.RawMessage(`{"total":999,"count":1}`)}); err != nil {
		t.Fatal(err)
	}
	repo := aggregate.NewRepository(store, counterType(100, 2))
	if _, err := repo.Handle(ctx, "b", eventstore.Metadata{}, add(5, 100)); err != nil {
		t.Fatal(err)
	}
	l, err := repo.Load(ctx, "b")
	if err != nil || l.State.Total != 5 || l.Version != 1 {
		t.Fatalf("load = %+v, %v; want total 5 (stale snapshot ignored)", l, err)
	}
}

func TestRuleBrokenAppendsNothing(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	repo := aggregate.NewRepository(store, counterType(0, 1))
	if _, err := repo.Handle(ctx, "c", eventstore.Metadata{}, add(5, 4)); !errors.Is(err, errLimit) {
		t.Fatalf("err = %v, want errLimit", err)
	}
	if head, _ := store.Head(ctx); head != 0 {
		t.Fatalf("head = %d after a refused command", head)
	}
}

func TestConcurrentCommandsRetryAndKeepInvariant(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	// No local serialisation: every writer races on the expected version.
	repo := aggregate.NewRepository(store, counterType(7, 1), aggregate.WithRetries(200), aggregate.WithLockStripes(0))
	const workers, each, limit = 16, 10, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := repo.Handle(ctx, "d", eventstore.Metadata{}, add(1, limit))
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, errLimit):
					refused++
				default:
					t.Errorf("handle: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l, err := repo.Load(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if ok != limit || refused != workers*each-limit || l.State.Total != limit || l.Version != limit {
		t.Fatalf("ok=%d refused=%d state=%+v version=%d", ok, refused, l.State, l.Version)
	}
}

func BenchmarkLoad10k(b *testing.B) {
	ctx := context.Background()
	store := openStore(b)
	for _, every := range []uint64{0, 10000} {
		repo := aggregate.NewRepository(store, counterType(every, 1))
		id := fmt.Sprintf("bench-%d", every)
		var evs []eventstore.EventData
		for i := 0; i < 10000; i++ {
			evs = append(evs, eventstore.EventData{Type: "Added", Data: json.RawMessage(`{"N":1}`)})
		}
		if _, err := store.Append(ctx, "counter-"+id, eventstore.NoStream, evs...); err != nil {
			b.Fatal(err)
		}
		l, err := repo.Load(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if every > 0 {
			if err := repo.SaveSnapshot(ctx, l); err != nil {
				b.Fatal(err)
			}
		}
		name := "replay"
		if every > 0 {
			name = "snapshot"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := repo.Load(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAssumeNew: a first command on an uncached aggregate appends without
// reading when the aggregate is new, and falls back to a real load when
// it is not (the stream exists, or the guess decided nothing or failed).
func TestAssumeNew(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	typ := counterType(0, 1)
	old := aggregate.NewRepository(store, typ)
	if _, err := old.Handle(ctx, "c1", eventstore.Metadata{}, add(5, 100)); err != nil {
		t.Fatal(err)
	}
	r := aggregate.NewRepository(store, typ, aggregate.WithCache(10), aggregate.AssumeNew())
	// Existing: the guess's no-stream append conflicts; it loads and decides again.
	res, err := r.Handle(ctx, "c1", eventstore.Metadata{}, add(2, 100))
	if err != nil || res.Version != 2 || res.State.Total != 7 {
		t.Fatalf("existing: %+v %v", res.Loaded, err)
	}
	// Existing, and the guess fails its rule (total 95+6 > 100 only if it
	// knew the stream): the real state decides.
	if _, err := old.Handle(ctx, "c3", eventstore.Metadata{}, add(95, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle(ctx, "c3", eventstore.Metadata{}, add(6, 100)); !errors.Is(err, errLimit) {
		t.Fatalf("existing over the limit: %v", err)
	}
	// New: appended at version 1 without a read.
	res, err = r.Handle(ctx, "c2", eventstore.Metadata{}, add(3, 100))
	if err != nil || res.Version != 1 {
		t.Fatalf("new: %+v %v", res.Loaded, err)
	}
	if l, _ := r.Load(ctx, "c1"); l.Version != 2 || l.State.Total != 7 {
		t.Fatalf("c1 = %+v", l)
	}
}

// snapshotCounter counts the snapshots saved through it.
type snapshotCounter struct {
	eventstore.Store
	mu       sync.Mutex
	versions []uint64
}

func (s *snapshotCounter) SaveSnapshot(ctx context.Context, snap eventstore.Snapshot) error {
	s.mu.Lock()
	s.versions = append(s.versions, snap.Version)
	s.mu.Unlock()
	return s.Store.SaveSnapshot(ctx, snap)
}

// A state that grows (here, a log of every amount added) is snapshotted
// less often as its snapshot grows, so that writing snapshots costs about
// the same for each event however long the stream; and a snapshot's load
// still equals the replay.
func TestLargeStatesAreSnapshottedLessOften(t *testing.T) {
	ctx := context.Background()
	store := &snapshotCounter{Store: openStore(t)}
	type grow struct {
		Log []string `json:"log"`
	}
	typ := aggregate.Type[grow, added]{
		Name:    "grow",
		Initial: func() grow { return grow{} },
		Evolve: func(s grow, e added) grow {
			s.Log = append(s.Log, fmt.Sprintf("%0100d", e.N))
			return s
		},
		Encode:        encodeAdded,
		Decode:        decodeAdded,
		SnapshotEvery: 10,
		StateVersion:  1,
	}
	repo := aggregate.NewRepository(store, typ, aggregate.WithCache(16))
	const events = 1000
	for i := range events {
		if _, err := repo.Handle(ctx, "g", eventstore.Metadata{}, func(aggregate.Loaded[grow]) ([]added, error) {
			return []added{{N: i}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Every 10 events would be 100 snapshots, of up to 100 KB: 5 MB
	// written. Spaced by size, each event pays for about 512 bytes.
	var written int
	for _, v := range store.versions {
		written += int(v) * 105 // each entry is about 105 bytes of JSON
	}
	if len(store.versions) >= events/10/2 || written > 4*512*events {
		t.Fatalf("%d snapshots at versions %v (about %d bytes) for %d events", len(store.versions), store.versions, written, events)
	}
	if len(store.versions) < 3 {
		t.Fatalf("only %d snapshots (%v) for %d events", len(store.versions), store.versions, events)
	}
	fresh := aggregate.NewRepository(store, typ)
	loaded, err := fresh.Load(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Version != events || len(loaded.State.Log) != events || loaded.State.Log[events-1] != fmt.Sprintf("%0100d", events-1) {
		t.Fatalf("loaded version %d with %d entries", loaded.Version, len(loaded.State.Log))
	}
	t.Logf("%d snapshots for %d events, at versions %v", len(store.versions), events, store.versions)
}
