package natsbus_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// dead records what reaches OnDead; it fails the first fails calls.
type dead struct {
	mu    sync.Mutex
	got   []string // consumer/message ID/error
	d     []messaging.Delivery
	fails atomic.Int64
}

func (k *dead) onDead(_ context.Context, consumer string, d messaging.Delivery, err error) error {
	if k.fails.Add(-1) >= 0 {
		return errors.New("the dead-letter table is away")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.got = append(k.got, consumer+"/"+d.ID+"/"+err.Error())
	k.d = append(k.d, d)
	return nil
}

func (k *dead) wait(t *testing.T, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		k.mu.Lock()
		got := append([]string(nil), k.got...)
		k.mu.Unlock()
		if len(got) >= n {
			return got
		}
	}
	t.Fatalf("OnDead got %d letters, want %d", len(k.got), n)
	return nil
}

// deadBuses is buses with OnDead set to k.onDead.
func deadBuses(t *testing.T, k func() *dead, f func(t *testing.T, b *natsbus.Bus, k *dead)) {
	t.Run("embedded", func(t *testing.T) {
		kk := k()
		b, err := natsbus.Open(context.Background(), natsbus.Options{DataDir: t.TempDir(), OnDead: kk.onDead, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		f(t, b, kk)
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv("AGORA_TEST_NATS_URL")
		if url == "" {
			t.Skip("AGORA_TEST_NATS_URL not set; skipping external NATS tests (.ci/run sets it)")
		}
		kk := k()
		ns := fmt.Sprintf("t%d", rand.Uint64())
		b, err := natsbus.Open(context.Background(), natsbus.Options{URL: url, Namespace: ns, OnDead: kk.onDead, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			deleteStreams(t, url, ns)
			b.Close()
		})
		f(t, b, kk)
	})
}

// TestPermanentFailureReachesOnDead: a delivery its handler fails
// permanently goes to OnDead once, named by the consumer (also one of
// several subjects), with the delivery and the error; when OnDead
// fails, the message comes back rather than being lost.
func TestPermanentFailureReachesOnDead(t *testing.T) {
	deadBuses(t, func() *dead { k := &dead{}; k.fails.Store(1); return k }, func(t *testing.T, b *natsbus.Bus, k *dead) {
		ctx := context.Background()
		if err := b.EnsureStream(ctx, "test", "test.>"); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		subscribe(t, b, messaging.Consumer{Name: "p", Stream: "test", Subjects: []string{"test.thing.happened", "test.other.>"}},
			func(context.Context, messaging.Delivery) error {
				calls.Add(1)
				return fmt.Errorf("bad schema: %w", messaging.ErrPermanent)
			})
		m := msg(1)
		m.Headers[messaging.HeaderTenant] = "acme"
		if err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		got := k.wait(t, 1)
		if got[0] != "p/m-1/bad schema: "+messaging.ErrPermanent.Error() {
			t.Errorf("OnDead got %q", got[0])
		}
		k.mu.Lock()
		d := k.d[0]
		k.mu.Unlock()
		if d.Subject != "test.thing.happened" || d.Type != "test.ThingHappened.v1" || string(d.Data) != "1" ||
			d.Headers[messaging.HeaderTenant] != "acme" || d.Attempt != 2 {
			t.Errorf("dead delivery %+v", d)
		}
		time.Sleep(500 * time.Millisecond)
		if c := calls.Load(); c != 2 {
			t.Errorf("handled %d times, want 2 (once more after OnDead failed, then dropped)", c)
		}
		st, err := b.ConsumerStats(ctx, messaging.Consumer{Name: "p", Stream: "test", Subjects: []string{"test.thing.happened", "test.other.>"}})
		if err != nil || st.AckPending != 0 || st.Pending != 0 {
			t.Errorf("stats %+v %v", st, err)
		}
	})
}
