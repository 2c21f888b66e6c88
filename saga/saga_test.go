package saga_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/saga"
)

type order struct {
	ID          string `json:"id"`
	Reservation string `json:"reservation,omitempty"`
}

// world records what steps did, in order, and lets a test script failures.
type world struct {
	mu    sync.Mutex
	log   []string
	fail  map[string]func(ctx context.Context, attempt int) error // by step or "undo:"+step
	ended []string
}

func newWorld() *world { return &world{fail: map[string]func(context.Context, int) error{}} }

func (w *world) record(s string) {
	w.mu.Lock()
	w.log = append(w.log, s)
	w.mu.Unlock()
}

func (w *world) script(key string, f func(ctx context.Context, attempt int) error) {
	w.mu.Lock()
	w.fail[key] = f
	w.mu.Unlock()
}

func (w *world) failure(ctx context.Context, key string, attempt int) error {
	w.mu.Lock()
	f := w.fail[key]
	w.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(ctx, attempt)
}

func (w *world) history() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log, " ")
}

func (w *world) definition(deadline time.Duration) saga.Definition[order] {
	step := func(name string) saga.Step[order] {
		return saga.Step[order]{
			Name: name,
			Action: func(ctx context.Context, x *saga.Exec[order]) error {
				if err := w.failure(ctx, name, x.Attempt); err != nil {
					w.record(name + "!")
					return err
				}
				if name == "reserve" {
					x.Data.Reservation = "r-" + x.Data.ID
				}
				w.record(name)
				return nil
			},
			Compensate: func(ctx context.Context, x *saga.Exec[order]) error {
				if err := w.failure(ctx, "undo:"+name, x.Attempt); err != nil {
					w.record("undo:" + name + "!")
					return err
				}
				if name == "reserve" && x.Data.Reservation == "" {
					return errors.New("the reservation ID was not kept")
				}
				w.record("undo:" + name + "(" + x.Reason + ")")
				return nil
			},
			Deadline: deadline,
		}
	}
	return saga.Definition[order]{
		Type:  "checkout",
		Steps: []saga.Step[order]{step("create"), step("reserve"), step("pay"), step("ship")},
		OnEnd: func(ctx context.Context, id string, status saga.Status, reason string, d order) error {
			w.mu.Lock()
			w.ended = append(w.ended, fmt.Sprintf("%s:%s:%s", id, status, reason))
			w.mu.Unlock()
			return nil
		},
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type harness struct {
	t     *testing.T
	store eventstore.Store
	db    *sql.DB
	w     *world
}

// engine starts an engine for the harness's world; stop cancels it.
func (h *harness) engine(deadline time.Duration) (e *saga.Engine, stop func()) {
	return h.engineWith(deadline, 0)
}

func (h *harness) engineWith(deadline, sweep time.Duration) (e *saga.Engine, stop func()) {
	e = saga.NewEngine(h.store, h.db, saga.Options{Logger: quiet(), BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		CompensationAttempts: 3, Sweep: sweep})
	saga.Register(e, h.w.definition(deadline))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return e, stop
}

func (h *harness) wait(e *saga.Engine, id string) saga.Instance {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in, err := e.Wait(ctx, id)
	if err != nil {
		h.t.Fatalf("wait %s: %v (history %s)", id, err, h.w.history())
	}
	return in
}

func setup(t *testing.T) *harness {
	store, db := testenv.SQLite(t)
	return &harness{t: t, store: store, db: db, w: newWorld()}
}

func statuses(in saga.Instance) string {
	var s []string
	for _, st := range in.Steps {
		s = append(s, st.Name+"="+st.Status)
	}
	return strings.Join(s, " ")
}

func TestCompletes(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := &harness{t: t, store: store, db: db, w: newWorld()}
		e, _ := h.engine(0)
		if _, err := e.Start(context.Background(), "checkout", "s1", order{ID: "o1"}); err != nil {
			t.Fatal(err)
		}
		// Starting again is a no-op.
		if _, err := e.Start(context.Background(), "checkout", "s1", order{ID: "other"}); err != nil {
			t.Fatal(err)
		}
		in := h.wait(e, "s1")
		if in.Status != saga.Completed || h.w.history() != "create reserve pay ship" {
			t.Fatalf("status %s, history %q", in.Status, h.w.history())
		}
		if got := statuses(in); got != "create=Completed reserve=Completed pay=Completed ship=Completed" {
			t.Fatalf("timeline %s", got)
		}
		if !strings.Contains(string(in.Data), `"reservation":"r-o1"`) {
			t.Fatalf("data %s lost the step's change", in.Data)
		}
		if !slices.Equal(h.w.ended, []string{"s1:Completed:"}) {
			t.Fatalf("ended %v", h.w.ended)
		}
	})
}

func TestBusinessFailureCompensatesInReverse(t *testing.T) {
	h := setup(t)
	h.w.script("pay", func(context.Context, int) error { return saga.Fail("insufficient_funds") })
	e, _ := h.engine(0)
	e.Start(context.Background(), "checkout", "s2", order{ID: "o2"})
	in := h.wait(e, "s2")
	want := "create reserve pay! undo:reserve(insufficient_funds) undo:create(insufficient_funds)"
	if in.Status != saga.Compensated || in.Reason != "insufficient_funds" || h.w.history() != want {
		t.Fatalf("status %s reason %q history %q", in.Status, in.Reason, h.w.history())
	}
	if got := statuses(in); got != "create=Compensated reserve=Compensated pay=Failed ship=Skipped" {
		t.Fatalf("timeline %s", got)
	}
	if !slices.Equal(h.w.ended, []string{"s2:Compensated:insufficient_funds"}) {
		t.Fatalf("ended %v", h.w.ended)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	h := setup(t)
	h.w.script("reserve", func(_ context.Context, attempt int) error {
		if attempt < 3 {
			return errors.New("inventory unavailable")
		}
		return nil
	})
	e, _ := h.engine(0)
	e.Start(context.Background(), "checkout", "s3", order{ID: "o3"})
	in := h.wait(e, "s3")
	if in.Status != saga.Completed || in.Steps[1].Attempts != 3 {
		t.Fatalf("status %s, reserve attempts %d, history %q", in.Status, in.Steps[1].Attempts, h.w.history())
	}
}

func TestExhaustedRetriesCompensateTheUncertainStep(t *testing.T) {
	h := setup(t)
	h.w.script("ship", func(context.Context, int) error { return errors.New("carrier down") })
	e, _ := h.engine(0)
	e.Start(context.Background(), "checkout", "s4", order{ID: "o4"})
	in := h.wait(e, "s4")
	if n := strings.Count(h.w.history(), "ship!"); in.Status != saga.Compensated || in.Reason != "step_failed" || n != 5 {
		t.Fatalf("status %s reason %q, %d attempts to ship", in.Status, in.Reason, n)
	}
	// The shipment may exist (its outcome is unknown), so it is cancelled too.
	if !strings.HasSuffix(h.w.history(), "undo:ship(step_failed) undo:pay(step_failed) undo:reserve(step_failed) undo:create(step_failed)") {
		t.Fatalf("history %q", h.w.history())
	}
}

func TestDeadline(t *testing.T) {
	h := setup(t)
	e := saga.NewEngine(h.store, h.db, saga.Options{Logger: quiet(), BaseBackoff: time.Millisecond})
	def := h.w.definition(0)
	def.Steps[2].Deadline = 50 * time.Millisecond
	def.Steps[2].Action = func(ctx context.Context, x *saga.Exec[order]) error {
		<-ctx.Done() // the payment service hangs
		return ctx.Err()
	}
	saga.Register(e, def)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	e.Start(ctx, "checkout", "s5", order{ID: "o5"})
	in := h.wait(e, "s5")
	if in.Status != saga.Compensated || in.Reason != "timeout" {
		t.Fatalf("status %s reason %q history %q", in.Status, in.Reason, h.w.history())
	}
}

func TestFailedCompensationWaitsForRetry(t *testing.T) {
	h := setup(t)
	h.w.script("pay", func(context.Context, int) error { return saga.Fail("insufficient_funds") })
	broken := true
	var mu sync.Mutex
	h.w.script("undo:reserve", func(context.Context, int) error {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			return errors.New("inventory down")
		}
		return nil
	})
	e, _ := h.engine(0)
	ctx := context.Background()
	e.Start(ctx, "checkout", "s6", order{ID: "o6"})
	in := h.wait(e, "s6")
	if in.Status != saga.Failed || in.Error != "inventory down" || in.Steps[1].Status != "CompensationFailed" {
		t.Fatalf("status %s error %q timeline %s", in.Status, in.Error, statuses(in))
	}
	if err := e.Retry(ctx, "s1-unknown"); !errors.Is(err, saga.ErrNotFound) {
		t.Fatalf("retry of an unknown saga: %v", err)
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	if err := e.Retry(ctx, "s6"); err != nil {
		t.Fatal(err)
	}
	in = h.wait(e, "s6")
	if in.Status != saga.Compensated || !strings.HasSuffix(h.w.history(), "undo:reserve(insufficient_funds) undo:create(insufficient_funds)") {
		t.Fatalf("after retry: status %s history %q", in.Status, h.w.history())
	}
	if err := e.Retry(ctx, "s6"); !errors.Is(err, saga.ErrNotFailed) {
		t.Fatalf("retry of a compensated saga: %v", err)
	}
}

// TestResumesAfterCrash stops an engine while a step hangs, then starts a
// new engine on the same store: it resumes at that step, and no completed
// step runs again.
func TestResumesAfterCrash(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := &harness{t: t, store: store, db: db, w: newWorld()}
		hang := make(chan struct{})
		var once sync.Once
		var crashed atomic.Bool
		h.w.script("pay", func(ctx context.Context, attempt int) error {
			if attempt == 1 && !crashed.Load() {
				once.Do(func() { close(hang) })
				<-ctx.Done() // the process dies mid-step
				return ctx.Err()
			}
			return nil
		})
		e, crash := h.engine(0)
		ctx := context.Background()
		for i := range 3 {
			if _, err := e.Start(ctx, "checkout", fmt.Sprintf("c%d", i), order{ID: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		<-hang
		time.Sleep(50 * time.Millisecond) // let the others reach the step too (or not: either way they resume)
		crash()
		crashed.Store(true) // the new process's first attempts succeed
		e2, _ := h.engine(0)
		for i := range 3 {
			in := h.wait(e2, fmt.Sprintf("c%d", i))
			if in.Status != saga.Completed {
				t.Fatalf("c%d: %s", i, in.Status)
			}
		}
		hist := h.w.history()
		if n := strings.Count(hist, "create"); n != 3 {
			t.Fatalf("create ran %d times for 3 sagas: %s", n, hist)
		}
		if n := strings.Count(hist, "ship"); n != 3 {
			t.Fatalf("ship ran %d times for 3 sagas: %s", n, hist)
		}
	})
}

// With Sweep, a running engine takes over the instances of one that died,
// without a restart.
func TestSweepTakesOverFromADeadEngine(t *testing.T) {
	h := setup(t)
	hang := make(chan struct{})
	var once sync.Once
	h.w.script("pay", func(ctx context.Context, attempt int) error {
		if attempt == 1 {
			once.Do(func() { close(hang) })
			select {
			case <-ctx.Done(): // the engine's process dies mid-step
				return ctx.Err()
			case <-time.After(time.Second): // the survivor got here first: a transient failure
				return errors.New("slow")
			}
		}
		return nil
	})
	survivor, _ := h.engineWith(0, 100*time.Millisecond) // running before the saga starts: it does not resume it at start
	doomed, crash := h.engine(0)
	if _, err := doomed.Start(context.Background(), "checkout", "c0", order{ID: "0"}); err != nil {
		t.Fatal(err)
	}
	<-hang
	crash()
	if in := h.wait(survivor, "c0"); in.Status != saga.Completed {
		t.Fatalf("c0: %s (%s)", in.Status, h.w.history())
	}
}

// hookedStore calls hook before each append; a hook error fails it.
type hookedStore struct {
	eventstore.Store
	hook func(stream string, evs []eventstore.EventData) error
}

func (s hookedStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, evs ...eventstore.EventData) (eventstore.AppendResult, error) {
	if err := s.hook(stream, evs); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.Store.Append(ctx, stream, expected, evs...)
}

// completes reports whether evs record step's completion.
func completes(evs []eventstore.EventData, step int) bool {
	if len(evs) == 0 || evs[0].Type != "saga.StepCompleted" {
		return false
	}
	var ev struct {
		Step int `json:"step"`
	}
	return json.Unmarshal(evs[0].Data, &ev) == nil && ev.Step == step
}

func overlapEngine(t *testing.T, h *harness, store eventstore.Store) (*saga.Engine, func()) {
	e := saga.NewEngine(store, h.db, saga.Options{Logger: quiet(), BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, CompensationAttempts: 3})
	d := h.w.definition(0)
	d.Overlap = true
	saga.Register(e, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return e, stop
}

// With Overlap, a step's action runs while the previous step's completion
// is being written: here that write waits until the next action has run,
// which would deadlock without the overlap.
func TestOverlapRunsTheNextActionDuringTheWrite(t *testing.T) {
	h := setup(t)
	reserved := make(chan struct{})
	h.w.script("reserve", func(context.Context, int) error { close(reserved); return nil })
	store := hookedStore{Store: h.store, hook: func(stream string, evs []eventstore.EventData) error {
		if completes(evs, 0) { // create's completion: wait for reserve to run
			select {
			case <-reserved:
			case <-time.After(10 * time.Second):
				return errors.New("reserve did not run while create's completion was written")
			}
		}
		return nil
	}}
	e, _ := overlapEngine(t, h, store)
	if _, err := e.Start(context.Background(), "checkout", "o1", order{ID: "o1"}); err != nil {
		t.Fatal(err)
	}
	in := h.wait(e, "o1")
	if in.Status != saga.Completed || h.w.history() != "create reserve pay ship" {
		t.Fatalf("status %s history %q", in.Status, h.w.history())
	}
	if got := statuses(in); got != "create=Completed reserve=Completed pay=Completed ship=Completed" {
		t.Fatalf("timeline %s", got)
	}
	if !strings.Contains(string(in.Data), `"reservation":"r-o1"`) {
		t.Fatalf("data %s lost the step's change", in.Data)
	}
}

// With Overlap, a business failure compensates only what ran: the engine
// knows the next action did not start.
func TestOverlapBusinessFailureCompensatesWhatRan(t *testing.T) {
	h := setup(t)
	h.w.script("pay", func(context.Context, int) error { return saga.Fail("insufficient_funds") })
	e, _ := overlapEngine(t, h, h.store)
	e.Start(context.Background(), "checkout", "o2", order{ID: "o2"})
	in := h.wait(e, "o2")
	want := "create reserve pay! undo:reserve(insufficient_funds) undo:create(insufficient_funds)"
	if in.Status != saga.Compensated || h.w.history() != want {
		t.Fatalf("status %s history %q, want %q", in.Status, h.w.history(), want)
	}
}

// With Overlap, a crash (here: the write of reserve's completion fails
// after pay already ran) leaves pay done without a record. When the saga
// then compensates, pay's compensation runs too.
func TestOverlapCompensatesTheStepThatMayHaveRun(t *testing.T) {
	h := setup(t)
	h.w.script("reserve", func(_ context.Context, attempt int) error {
		if attempt > 1 {
			return saga.Fail("gone")
		}
		return nil
	})
	paid := make(chan struct{})
	h.w.script("pay", func(context.Context, int) error { close(paid); return nil })
	store := hookedStore{Store: h.store, hook: func(stream string, evs []eventstore.EventData) error {
		if completes(evs, 1) { // reserve's completion: lost once pay ran
			<-paid
			return errors.New("disk gone")
		}
		return nil
	}}
	e, crash := overlapEngine(t, h, store)
	if _, err := e.Start(context.Background(), "checkout", "o3", order{ID: "o3"}); err != nil {
		t.Fatal(err)
	}
	<-paid
	time.Sleep(50 * time.Millisecond)
	crash()
	e2, _ := overlapEngine(t, h, h.store)
	in := h.wait(e2, "o3")
	want := "create reserve pay reserve! undo:pay(gone) undo:create(gone)"
	if in.Status != saga.Compensated || h.w.history() != want {
		t.Fatalf("status %s history %q, want %q", in.Status, h.w.history(), want)
	}
}

func TestTypesLimitWhatAnEngineDrives(t *testing.T) {
	h := setup(t)
	// This engine knows checkouts but drives only another type.
	other := saga.NewEngine(h.store, h.db, saga.Options{Logger: quiet(), Types: []string{"transfer"}})
	saga.Register(other, h.w.definition(0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); other.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := other.Start(context.Background(), "checkout", "c0", order{ID: "0"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := h.w.history(); got != "" {
		t.Fatalf("an engine limited to transfers ran checkout steps: %s", got)
	}
	// An engine that drives checkouts takes it up on its sweep.
	mine := saga.NewEngine(h.store, h.db, saga.Options{Logger: quiet(), Types: []string{"checkout"}, Sweep: 50 * time.Millisecond,
		BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	saga.Register(mine, h.w.definition(0))
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() { defer close(mdone); mine.Run(mctx) }()
	t.Cleanup(func() { mcancel(); <-mdone })
	if in := h.wait(mine, "c0"); in.Status != saga.Completed {
		t.Fatalf("c0: %s (%s)", in.Status, h.w.history())
	}
	if got := h.w.history(); got != "create reserve pay ship" {
		t.Fatalf("history %q", got)
	}
}

// TestMetadataRidesWithTheInstance: what Start is given (WithMetadata)
// is on every event of the instance and in its steps' context; Retry's
// own caller is on the events it records.
func TestMetadataRidesWithTheInstance(t *testing.T) {
	h := setup(t)
	h.w.script("pay", func(context.Context, int) error { return saga.Fail("insufficient_funds") })
	var mu sync.Mutex
	broken, seen := true, map[string]eventstore.Metadata{}
	h.w.script("undo:reserve", func(ctx context.Context, _ int) error {
		m, _ := saga.MetadataFrom(ctx)
		mu.Lock()
		defer mu.Unlock()
		seen["undo:reserve"] = m
		if broken {
			return errors.New("inventory down")
		}
		return nil
	})
	e, _ := h.engine(0)
	starter := eventstore.Metadata{Tenant: "t1", User: "u1", CorrelationID: "req-1", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	if _, err := e.Start(saga.WithMetadata(context.Background(), starter), "checkout", "m1", order{ID: "o1"}); err != nil {
		t.Fatal(err)
	}
	if in := h.wait(e, "m1"); in.Status != saga.Failed {
		t.Fatalf("status %s", in.Status)
	}
	mu.Lock()
	broken = false
	if seen["undo:reserve"] != starter {
		t.Errorf("a compensation's context carries %+v, want the starter's %+v", seen["undo:reserve"], starter)
	}
	mu.Unlock()
	operator := eventstore.Metadata{Tenant: "t1", User: "admin-7", CorrelationID: "req-2"}
	if err := e.Retry(saga.WithMetadata(context.Background(), operator), "m1"); err != nil {
		t.Fatal(err)
	}
	if in := h.wait(e, "m1"); in.Status != saga.Compensated {
		t.Fatalf("after retry: %s", in.Status)
	}
	recs, err := h.store.ReadStream(context.Background(), saga.StreamID("m1"), eventstore.StreamRead{From: 1, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	retried := 0
	for _, r := range recs {
		want := starter
		if r.Type == "saga.Retried" {
			want = operator
			retried++
		}
		if r.Metadata != want {
			t.Errorf("event %d %s: metadata %+v, want %+v", r.Version, r.Type, r.Metadata, want)
		}
	}
	if retried != 1 || len(recs) < 8 {
		t.Fatalf("%d events, %d of them Retried", len(recs), retried)
	}
}
