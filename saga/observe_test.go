package saga_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/saga"
)

// observer records what an engine reports.
type observer struct {
	mu      sync.Mutex
	started []string
	steps   []string
	ended   []string
}

func (o *observer) Started(typ string) {
	o.mu.Lock()
	o.started = append(o.started, typ)
	o.mu.Unlock()
}

func (o *observer) Step(typ, step string, compensation bool, outcome saga.Outcome, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took < 0 {
		o.steps = append(o.steps, "negative duration")
	}
	name := step
	if compensation {
		name = "undo:" + step
	}
	o.steps = append(o.steps, typ+"/"+name+"="+string(outcome))
}

func (o *observer) Ended(typ string, status saga.Status, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took <= 0 {
		o.ended = append(o.ended, "non-positive duration")
	}
	o.ended = append(o.ended, typ+"="+string(status))
}

func (o *observer) snapshot() (started, steps, ended []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.started), slices.Clone(o.steps), slices.Clone(o.ended)
}

func TestObserverSeesStartsStepsAndEnds(t *testing.T) {
	h := setup(t)
	obs := &observer{}
	e := saga.NewEngine(h.store, h.db, saga.Options{Logger: quiet(), BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		CompensationAttempts: 3, Observer: obs})
	saga.Register(e, h.w.definition(time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// One completes; one is refused at pay after a transient error there;
	// a repeated Start starts nothing.
	if _, err := e.Start(context.Background(), "checkout", "ok", order{ID: "o1"}); err != nil {
		t.Fatal(err)
	}
	h.wait(e, "ok")
	h.w.script("pay", func(_ context.Context, attempt int) error {
		if attempt == 1 {
			return fmt.Errorf("payments unavailable")
		}
		return saga.Fail("insufficient_funds")
	})
	e.Start(context.Background(), "checkout", "refused", order{ID: "o2"})
	e.Start(context.Background(), "checkout", "refused", order{ID: "o2"})
	if in := h.wait(e, "refused"); in.Status != saga.Compensated {
		t.Fatalf("status %s", in.Status)
	}
	// The observer hears an end just after it is recorded, so a reader
	// of the instance may see it first.
	started, steps, ended := obs.snapshot()
	for deadline := time.Now().Add(5 * time.Second); len(ended) < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		started, steps, ended = obs.snapshot()
	}
	if want := []string{"checkout", "checkout"}; !slices.Equal(started, want) {
		t.Errorf("started %v, want %v", started, want)
	}
	want := []string{
		"checkout/create=completed", "checkout/reserve=completed", "checkout/pay=completed", "checkout/ship=completed",
		"checkout/create=completed", "checkout/reserve=completed", "checkout/pay=error", "checkout/pay=rejected",
		"checkout/undo:reserve=completed", "checkout/undo:create=completed",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("steps\n%v, want\n%v", steps, want)
	}
	if want := []string{"checkout=Completed", "checkout=Compensated"}; !slices.Equal(ended, want) {
		t.Errorf("ended %v, want %v", ended, want)
	}
}

func TestBacklogCountsUnfinishedInstances(t *testing.T) {
	h := setup(t)
	release := make(chan struct{})
	h.w.script("ship", func(ctx context.Context, _ int) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	e, _ := h.engine(30 * time.Second)
	before := time.Now()
	for _, id := range []string{"a", "b"} {
		if _, err := e.Start(context.Background(), "checkout", id, order{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	get := func() map[saga.Status]saga.Backlog {
		t.Helper()
		bl, err := e.Backlog(context.Background())
		for deadline := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(deadline); bl, err = e.Backlog(context.Background()) {
			time.Sleep(10 * time.Millisecond) // the engine makes its index when it runs
		}
		if err != nil {
			t.Fatal(err)
		}
		out := map[saga.Status]saga.Backlog{}
		for _, b := range bl {
			if b.Type != "checkout" {
				t.Fatalf("backlog of type %q", b.Type)
			}
			out[b.Status] = b
		}
		if len(bl) != 3 || len(out) != 3 {
			t.Fatalf("backlog %+v, want Started, Compensating and Failed", bl)
		}
		return out
	}
	// The index follows the store: wait for both starts.
	deadline := time.Now().Add(10 * time.Second)
	var bl map[saga.Status]saga.Backlog
	for bl = get(); bl[saga.Started].Count != 2 && time.Now().Before(deadline); bl = get() {
		time.Sleep(10 * time.Millisecond)
	}
	st := bl[saga.Started]
	if st.Count != 2 || st.Oldest.Before(before.Add(-time.Second)) || st.Oldest.After(time.Now()) {
		t.Fatalf("started backlog %+v (test began %v)", st, before)
	}
	if st.Deadline != 4*30*time.Second {
		t.Errorf("deadline %v, want the sum of the four steps' 30s", st.Deadline)
	}
	if c := bl[saga.Compensating]; c.Count != 0 || !c.Oldest.IsZero() {
		t.Errorf("compensating backlog %+v, want none", c)
	}
	close(release)
	h.wait(e, "a")
	h.wait(e, "b")
	for bl = get(); bl[saga.Started].Count != 0 && time.Now().Before(deadline); bl = get() {
		time.Sleep(10 * time.Millisecond)
	}
	if n := bl[saga.Started].Count + bl[saga.Compensating].Count + bl[saga.Failed].Count; n != 0 {
		t.Fatalf("backlog %+v after both completed", bl)
	}
}
