package natsbus_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// buses runs f against an embedded server and, when AGORA_TEST_NATS_URL
// is set, an external one (in a namespace of its own).
func buses(t *testing.T, f func(t *testing.T, b *natsbus.Bus)) {
	t.Run("embedded", func(t *testing.T) {
		b, err := natsbus.Open(context.Background(), natsbus.Options{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		f(t, b)
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv("AGORA_TEST_NATS_URL")
		if url == "" {
			t.Skip("AGORA_TEST_NATS_URL not set; skipping external NATS tests (.ci/run sets it)")
		}
		ns := fmt.Sprintf("t%d", rand.Uint64())
		b, err := natsbus.Open(context.Background(), natsbus.Options{URL: url, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			deleteStreams(t, url, ns)
			b.Close()
		})
		f(t, b)
	})
}

func deleteStreams(t *testing.T, url, ns string) {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for name := range js.StreamNames(ctx).Name() {
		if len(name) > len(ns) && name[:len(ns)+1] == fmt.Sprintf("%s_", upper(ns)) {
			_ = js.DeleteStream(ctx, name)
		}
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func msg(i int) messaging.Message {
	return messaging.Message{
		ID:      fmt.Sprintf("m-%d", i),
		Subject: "test.thing.happened",
		Type:    "test.ThingHappened.v1",
		Data:    json.RawMessage(strconv.Itoa(i)),
		Headers: map[string]string{messaging.HeaderCorrelation: "c-1"},
	}
}

// collector records deliveries by message ID.
type collector struct {
	mu   sync.Mutex
	seen map[string]int
	n    atomic.Int64
}

func newCollector() *collector { return &collector{seen: map[string]int{}} }

func (c *collector) handle(_ context.Context, d messaging.Delivery) error {
	c.mu.Lock()
	c.seen[d.ID]++
	c.mu.Unlock()
	c.n.Add(1)
	return nil
}

func (c *collector) waitDistinct(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		got := len(c.seen)
		c.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("saw %d distinct messages, want %d", len(c.seen), n)
}

func subscribe(t *testing.T, b *natsbus.Bus, c messaging.Consumer, h messaging.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Subscribe(ctx, c, h); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("subscribe: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func TestPublishSubscribeAndDeduplicate(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		var msgs []messaging.Message
		for i := range 200 {
			msgs = append(msgs, msg(i))
		}
		if err := b.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		// Published again (a relay that crashed before its checkpoint):
		// the broker drops every repeat.
		if err := b.Publish(ctx, msgs[:150]...); err != nil {
			t.Fatal(err)
		}
		var first messaging.Delivery
		var once sync.Once
		c := newCollector()
		subscribe(t, b, messaging.Consumer{Name: "c1", Stream: "test"}, func(ctx context.Context, d messaging.Delivery) error {
			once.Do(func() { first = d })
			return c.handle(ctx, d)
		})
		c.waitDistinct(t, 200)
		time.Sleep(100 * time.Millisecond)
		if n := c.n.Load(); n != 200 {
			t.Fatalf("%d deliveries of 200 distinct messages", n)
		}
		if first.ID != "m-0" || first.Subject != "test.thing.happened" || first.Type != "test.ThingHappened.v1" ||
			string(first.Data) != "0" || first.Headers[messaging.HeaderCorrelation] != "c-1" || first.Attempt != 1 {
			t.Fatalf("first delivery = %+v", first)
		}
	})
}

// TestRedeliveryWithInbox fails handlers after their effect committed (a
// crash before the ack): the message comes back, and the inbox keeps the
// effect single.
func TestRedeliveryWithInbox(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		_, db := testenv.SQLite(t)
		inbox, err := messaging.NewInbox(ctx, db, "counter")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE effects (id TEXT, n INTEGER)`); err != nil {
			t.Fatal(err)
		}
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		const n = 50
		var attempts atomic.Int64
		subscribe(t, b, messaging.Consumer{Name: "counter", Stream: "test", AckWait: time.Second}, func(ctx context.Context, d messaging.Delivery) error {
			attempts.Add(1)
			if _, err := inbox.Handle(ctx, d.ID, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO effects (id, n) VALUES ($1, $2)`, d.ID, string(d.Data))
				return err
			}); err != nil {
				return err
			}
			if d.Attempt == 1 && d.ID[len(d.ID)-1]%2 == 0 {
				return errors.New("crashed after the effect, before the ack")
			}
			return nil
		})
		var msgs []messaging.Message
		for i := range n {
			msgs = append(msgs, msg(i))
		}
		if err := b.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for attempts.Load() < n+n/2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		var rows, distinct int
		db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT id) FROM effects`).Scan(&rows, &distinct)
		if rows != n || distinct != n {
			t.Fatalf("%d effects (%d distinct) after %d deliveries; want %d", rows, distinct, attempts.Load(), n)
		}
		if attempts.Load() < n+n/2 {
			t.Fatalf("only %d deliveries: the failed ones were not redelivered", attempts.Load())
		}
	})
}

func TestPermanentFailureIsNotRedelivered(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		subscribe(t, b, messaging.Consumer{Name: "p", Stream: "test", AckWait: 200 * time.Millisecond}, func(context.Context, messaging.Delivery) error {
			calls.Add(1)
			return fmt.Errorf("bad schema: %w", messaging.ErrPermanent)
		})
		if err := b.Publish(ctx, msg(1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if c := calls.Load(); c != 1 {
			t.Fatalf("a permanently failing message was handled %d times", c)
		}
	})
}

// mapper publishes "Shipped" events and skips the rest.
func mapper(r eventstore.Record) (messaging.Message, bool, error) {
	if r.Type != "Shipped" {
		return messaging.Message{}, false, nil
	}
	return messaging.Message{Subject: "test.shipped", Type: "test.Shipped.v1", Data: r.Data}, true, nil
}

func appendEvents(t *testing.T, s eventstore.Store, from, to int) (shipped int) {
	t.Helper()
	for i := from; i < to; i++ {
		typ := "Packed"
		if i%3 != 0 {
			typ = "Shipped"
			shipped++
		}
		if _, err := s.Append(context.Background(), fmt.Sprintf("order-%d", i%17), eventstore.Any,
			eventstore.EventData{Type: typ, Data: json.RawMessage(strconv.Itoa(i)), Metadata: eventstore.Metadata{Tenant: "t1"}}); err != nil {
			t.Fatal(err)
		}
	}
	return shipped
}

// flaky fails every third Save, after the batch was published.
type flaky struct {
	messaging.Checkpoints
	n atomic.Int64
}

func (f *flaky) Save(ctx context.Context, name string, pos uint64) error {
	if f.n.Add(1)%3 == 0 {
		return errors.New("checkpoint store down")
	}
	return f.Checkpoints.Save(ctx, name, pos)
}

// TestRelay relays an event log through failing checkpoints and a relay
// restart: every mapped event arrives exactly once, nothing else does.
func TestRelay(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		store, db := testenv.SQLite(t)
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		cps, err := messaging.SQLCheckpoints(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		c := newCollector()
		var tenants atomic.Int64
		subscribe(t, b, messaging.Consumer{Name: "shipped", Stream: "test"}, func(ctx context.Context, d messaging.Delivery) error {
			if d.Headers[messaging.HeaderTenant] == "t1" && d.Headers[messaging.HeaderPosition] != "" {
				tenants.Add(1)
			}
			return c.handle(ctx, d)
		})
		run := func(cp messaging.Checkpoints) (*messaging.Relay, func()) {
			r := messaging.NewRelay(messaging.EventLog(store, mapper), b, cp, messaging.RelayOptions{Name: "test", BatchSize: 100, Tail: b.Tail("test"), Logger: quiet()})
			return r, startRelay(t, r)
		}
		want := appendEvents(t, store, 0, 1500)
		r, stop := run(&flaky{Checkpoints: cps})
		head, _ := store.Head(ctx)
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := r.WaitFor(wctx, head); err != nil {
			t.Fatal(err)
		}
		stop()
		// A restarted relay continues from its checkpoint.
		want += appendEvents(t, store, 1500, 2000)
		r, _ = run(cps)
		head, _ = store.Head(ctx)
		if err := r.WaitFor(wctx, head); err != nil {
			t.Fatal(err)
		}
		c.waitDistinct(t, want)
		time.Sleep(100 * time.Millisecond)
		if n := c.n.Load(); n != int64(want) {
			t.Fatalf("%d deliveries of %d distinct events", n, want)
		}
		if tenants.Load() != int64(want) {
			t.Fatalf("%d of %d deliveries carried tenant and position headers", tenants.Load(), want)
		}
		if pos, _ := cps.Load(ctx, "test"); pos != head {
			t.Fatalf("checkpoint %d, head %d", pos, head)
		}
	})
}

// TestRelayRepublishesALostTail simulates a broker that acknowledged
// messages and then lost them (a crash before its lazy fsync): the stream
// is rebuilt holding only what "survived", and the relay, told that the
// broker reconnected, publishes the rest again.
func TestRelayRepublishesALostTail(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		store, db := testenv.SQLite(t)
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		cps, _ := messaging.SQLCheckpoints(ctx, db)
		want := appendEvents(t, store, 0, 600)
		r := messaging.NewRelay(messaging.EventLog(store, mapper), b, cps, messaging.RelayOptions{Name: "test", BatchSize: 64, Tail: b.Tail("test"), Logger: quiet()})
		head, _ := store.Head(ctx)
		stop := startRelay(t, r)
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := r.WaitFor(wctx, head); err != nil {
			t.Fatal(err)
		}
		// The broker "loses" everything after the first 100 messages: we
		// copy those, recreate the stream with just them, and tell the relay.
		survivors := readStream(t, b, "test", 100)
		stop()
		if err := b.DeleteStream(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, survivors...); err != nil {
			t.Fatal(err)
		}
		r.RequestRewind()
		startRelay(t, r)
		// The whole log is in the stream again, once.
		c := newCollector()
		subscribe(t, b, messaging.Consumer{Name: "after", Stream: "test"}, c.handle)
		c.waitDistinct(t, want)
		time.Sleep(100 * time.Millisecond)
		if n := c.n.Load(); n != int64(want) {
			t.Fatalf("%d messages in the stream, want %d", n, want)
		}
	})
}

func readStream(t *testing.T, b *natsbus.Bus, stream string, n int) []messaging.Message {
	t.Helper()
	var out []messaging.Message
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan struct{})
	go b.Subscribe(ctx, messaging.Consumer{Name: "copy", Stream: stream}, func(_ context.Context, d messaging.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if len(out) < n {
			out = append(out, d.Message)
			if len(out) == n {
				close(got)
			}
		}
		return nil
	})
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("could not read the stream")
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]messaging.Message(nil), out...)
}

func TestSQLOutbox(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		_, db := testenv.SQLite(t)
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		ob, err := messaging.NewSQLOutbox(ctx, db, "catalog_outbox", messaging.SQLiteAutoIncrement)
		if err != nil {
			t.Fatal(err)
		}
		cps, _ := messaging.SQLCheckpoints(ctx, db)
		r := messaging.NewRelay(ob, b, cps, messaging.RelayOptions{Name: "catalog", Tail: b.Tail("test"), Logger: quiet()})
		startRelay(t, r)
		c := newCollector()
		subscribe(t, b, messaging.Consumer{Name: "c", Stream: "test"}, c.handle)
		for i := range 20 {
			tx, _ := db.BeginTx(ctx, nil)
			if err := ob.Add(ctx, tx, msg(i)); err != nil {
				t.Fatal(err)
			}
			if i%4 == 3 {
				tx.Rollback() // the change failed: its message must not go out
				continue
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			ob.Notify()
		}
		c.waitDistinct(t, 15)
		time.Sleep(200 * time.Millisecond)
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := range 20 {
			if got, want := c.seen[fmt.Sprintf("m-%d", i)], 1-btoi(i%4 == 3); got != want {
				t.Fatalf("m-%d delivered %d times, want %d", i, got, want)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startRelay runs r until the returned stop (or the test's end).
func startRelay(t *testing.T, r *messaging.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// TestInFlightOneKeepsOrderAcrossSubscribers: a durable consumer with
// InFlight 1, subscribed twice (two processes), handles the stream
// strictly in order, even when a handler fails and its message comes
// back later.
func TestInFlightOneKeepsOrderAcrossSubscribers(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx := context.Background()
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		const n = 30
		var (
			mu      sync.Mutex
			handled []int
			failed  = map[int]bool{}
		)
		done := make(chan struct{})
		h := func(_ context.Context, d messaging.Delivery) error {
			i, err := strconv.Atoi(string(d.Data))
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if i%7 == 3 && !failed[i] {
				failed[i] = true
				return errors.New("a transient failure")
			}
			handled = append(handled, i)
			if len(handled) == n {
				close(done)
			}
			return nil
		}
		c := messaging.Consumer{Name: "ordered", Stream: "test", InFlight: 1}
		subscribe(t, b, c, h)
		subscribe(t, b, c, h)
		var msgs []messaging.Message
		for i := range n {
			msgs = append(msgs, msg(i))
		}
		if err := b.Publish(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("not every message was handled")
		}
		mu.Lock()
		defer mu.Unlock()
		for i, got := range handled {
			if got != i {
				t.Fatalf("handled in the order %v, want 0…%d", handled, n-1)
			}
		}
	})
}
