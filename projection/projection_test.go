package projection_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/projection"
)

// ledger records every event's position once; a duplicate would violate
// the primary key, a loss would show in the count.
type ledger struct {
	failEvery atomic.Int64 // fail (after writing) every nth batch, to simulate crashes
	batches   atomic.Int64
}

func (l *ledger) Name() string { return "ledger" }

func (l *ledger) Setup(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS ledger (position BIGINT PRIMARY KEY, n BIGINT NOT NULL)`)
	return err
}

func (l *ledger) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	for _, r := range batch {
		var n int64
		if err := json.Unmarshal(r.Data, &n); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger (position, n) VALUES ($1, $2)`, int64(r.Position), n); err != nil {
			return err
		}
	}
	if k := l.failEvery.Load(); k > 0 && l.batches.Add(1)%k == 0 {
		return errors.New("simulated crash after writing")
	}
	return nil
}

func (l *ledger) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM ledger`)
	return err
}

func appendN(t *testing.T, s eventstore.Store, from, to int) uint64 {
	var last uint64
	for i := from; i < to; i++ {
		res, err := s.Append(context.Background(), fmt.Sprintf("s-%d", i%5), eventstore.Any, eventstore.EventData{Type: "N", Data: json.RawMessage(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}
	return last
}

func count(t *testing.T, db *sql.DB) (n, sum int64) {
	if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(n), 0) FROM ledger`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	return n, sum
}

func TestExactlyOnceAcrossFailuresAndRestarts(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		p := &ledger{}
		p.failEvery.Store(3)
		appendN(t, store, 0, 300)
		ctx, cancel := context.WithCancel(context.Background())
		r := projection.NewRunner(store, db, p, projection.Options{BatchSize: 7})
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		last := appendN(t, store, 300, 400)
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		if err := r.WaitFor(wctx, last); err != nil {
			t.Fatalf("wait: %v (at %d)", err, r.Position())
		}
		cancel()
		<-done
		// A new runner (a restarted process) continues from the checkpoint.
		p.failEvery.Store(0)
		last = appendN(t, store, 400, 450)
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		r2 := projection.NewRunner(store, db, p, projection.Options{})
		go r2.Run(ctx2)
		wctx2, wcancel2 := context.WithTimeout(ctx2, 30*time.Second)
		defer wcancel2()
		if err := r2.WaitFor(wctx2, last); err != nil {
			t.Fatal(err)
		}
		n, sum := count(t, db)
		if n != 450 || sum != 449*450/2 {
			t.Fatalf("ledger has %d rows summing to %d; want 450 and %d", n, sum, 449*450/2)
		}
		if lag, err := r2.Lag(ctx2); err != nil || lag != 0 {
			t.Fatalf("lag = %d, %v", lag, err)
		}
	})
}

func TestRebuild(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		p := &ledger{}
		last := appendN(t, store, 0, 200)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := projection.NewRunner(store, db, p, projection.Options{BatchSize: 50})
		go r.Run(ctx)
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		if err := r.WaitFor(wctx, last); err != nil {
			t.Fatal(err)
		}
		// Corrupt the read model; a rebuild must restore it.
		if _, err := db.Exec(`UPDATE ledger SET n = 0`); err != nil {
			t.Fatal(err)
		}
		var calls int
		if err := r.Rebuild(wctx, func(pos, target uint64) { calls++ }); err != nil {
			t.Fatal(err)
		}
		if r.Position() < last {
			t.Fatalf("after rebuild position %d < %d", r.Position(), last)
		}
		n, sum := count(t, db)
		if n != 200 || sum != 199*200/2 {
			t.Fatalf("after rebuild: %d rows, sum %d", n, sum)
		}
		// Live events after a rebuild still arrive.
		last = appendN(t, store, 200, 210)
		if err := r.WaitFor(wctx, last); err != nil {
			t.Fatal(err)
		}
		if n, _ := count(t, db); n != 210 {
			t.Fatalf("after rebuild and more events: %d rows", n)
		}
	})
}

func TestWaitForTimesOut(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		r := projection.NewRunner(store, db, &ledger{}, projection.Options{})
		if err := r.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		if err := r.WaitFor(ctx, 5); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
	})
}

// tally counts events with a non-idempotent increment: an event applied
// twice counts twice.
type tally struct{ name string }

func (c tally) Name() string { return c.name }

func (c tally) Setup(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS tally (name TEXT PRIMARY KEY, n BIGINT NOT NULL)`); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, `INSERT INTO tally (name, n) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING`, c.name)
	return err
}

func (c tally) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	_, err := tx.ExecContext(ctx, `UPDATE tally SET n = n + $1 WHERE name = $2`, len(batch), c.name)
	return err
}

func (c tally) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE tally SET n = 0 WHERE name = $1`, c.name)
	return err
}

// Two runners of one projection on one PostgreSQL database (two
// instances of a service) apply every event exactly once when Shared,
// both keep up for read-your-writes, and the control without Shared
// applies events twice.
func TestSharedRunnersApplyOnce(t *testing.T) {
	store, db := testenv.Postgres(t)
	const events = 1500
	for _, shared := range []bool{true, false} {
		name := fmt.Sprintf("tally-shared-%v", shared)
		ctx, cancel := context.WithCancel(context.Background())
		var runners []*projection.Runner
		done := make(chan error, 2)
		for range 2 {
			r := projection.NewRunner(store, db, tally{name}, projection.Options{BatchSize: 20, Shared: shared})
			runners = append(runners, r)
			go func() { done <- r.Run(ctx) }()
		}
		head := appendN(t, store, 0, events)
		for _, r := range runners {
			wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
			err := r.WaitFor(wctx, head)
			wcancel()
			if err != nil {
				var at int64
				db.QueryRow(`SELECT position FROM projection_checkpoints WHERE name = $1`, name).Scan(&at)
				t.Fatalf("shared=%v: a runner did not reach the head %d: %v (positions %d, %d; checkpoint %d)", shared, head, err,
					runners[0].Position(), runners[1].Position(), at)
			}
		}
		cancel()
		<-done
		<-done
		var n int64
		if err := db.QueryRow(`SELECT n FROM tally WHERE name = $1`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total := int64(head) // the log holds only this test's events, from position 1 (both rounds')
		switch {
		case shared && n != total:
			t.Fatalf("shared runners applied %d events of %d", n, total)
		case !shared && n <= total:
			t.Fatalf("control: unshared runners applied %d of %d events: want some twice (the test would not see double applies)", n, total)
		}
	}
}

// reacting is a tally that is also a Reactor: it counts its reactions to
// each event's position.
type reacting struct {
	tally
	mu      *sync.Mutex
	reacted map[uint64]int
}

func (r reacting) React(_ context.Context, batch []eventstore.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range batch {
		r.reacted[e.Position]++
	}
	return nil
}

// Two Shared runners of one Reactor (two instances of a service) react to
// each event once: only the runner that applies a batch reacts to it. The
// control without Shared reacts to events twice.
func TestSharedRunnersReactOnce(t *testing.T) {
	store, db := testenv.Postgres(t)
	const events = 600
	from := 0
	for _, shared := range []bool{true, false} {
		p := reacting{tally: tally{fmt.Sprintf("react-shared-%v", shared)}, mu: &sync.Mutex{}, reacted: map[uint64]int{}}
		ctx, cancel := context.WithCancel(context.Background())
		var runners []*projection.Runner
		done := make(chan error, 2)
		for range 2 {
			r := projection.NewRunner(store, db, p, projection.Options{BatchSize: 20, Shared: shared})
			runners = append(runners, r)
			go func() { done <- r.Run(ctx) }()
		}
		head := appendN(t, store, from, from+events)
		from += events
		for _, r := range runners {
			wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
			err := r.WaitFor(wctx, head)
			wcancel()
			if err != nil {
				t.Fatalf("shared=%v: a runner did not reach the head %d: %v", shared, head, err)
			}
		}
		cancel()
		<-done
		<-done
		p.mu.Lock()
		twice := 0
		for pos := head - events + 1; pos <= head; pos++ {
			switch n := p.reacted[pos]; {
			case n == 0:
				t.Fatalf("shared=%v: no reaction to position %d", shared, pos)
			case n > 1:
				twice++
			}
		}
		p.mu.Unlock()
		switch {
		case shared && twice > 0:
			t.Fatalf("shared runners reacted to %d events of %d more than once", twice, events)
		case !shared && twice == 0:
			t.Fatalf("control: unshared runners reacted to every event once: want some twice (the test would not see double reactions)")
		}
	}
}
