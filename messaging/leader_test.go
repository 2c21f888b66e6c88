package messaging_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
)

// memLog is an in-memory Log whose every entry has a message.
type memLog struct {
	mu      sync.Mutex
	entries []messaging.Entry
	grew    eventstore.Notifier
}

func (l *memLog) add(n int) {
	l.mu.Lock()
	for range n {
		p := uint64(len(l.entries) + 1)
		l.entries = append(l.entries, messaging.Entry{Position: p, Message: &messaging.Message{ID: strconv.FormatUint(p, 10), Subject: "test.x"}})
	}
	head := uint64(len(l.entries))
	l.mu.Unlock()
	l.grew.Reset(head)
}

func (l *memLog) Read(_ context.Context, after uint64, limit int) ([]messaging.Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if after >= uint64(len(l.entries)) {
		return nil, nil
	}
	return l.entries[after:min(uint64(len(l.entries)), after+uint64(limit))], nil
}

func (l *memLog) Wait(ctx context.Context, after uint64) error { return l.grew.Wait(ctx, after) }

// tally counts which relay published which message.
type tally struct {
	mu  sync.Mutex
	by  map[string]map[string]int // relay → message ID → times
	all map[string]bool
}

func (t *tally) publisher(relay string) messaging.Publisher {
	return pubFunc(func(_ context.Context, msgs ...messaging.Message) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.by[relay] == nil {
			t.by[relay] = map[string]int{}
		}
		for _, m := range msgs {
			t.by[relay][m.ID]++
			t.all[m.ID] = true
		}
		return nil
	})
}

func (t *tally) counts() (distinct int, by map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	by = map[string]int{}
	for r, ids := range t.by {
		by[r] = len(ids)
	}
	return len(t.all), by
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type pubFunc func(ctx context.Context, msgs ...messaging.Message) error

func (f pubFunc) Publish(ctx context.Context, msgs ...messaging.Message) error {
	return f(ctx, msgs...)
}

func TestPostgresLeaderLetsOneRelayPublish(t *testing.T) {
	_, db := testenv.Postgres(t)
	ctx := context.Background()
	cps, err := messaging.SQLCheckpoints(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	var logged lockedBuffer
	watched := slog.New(slog.NewTextHandler(&logged, nil))
	name := fmt.Sprintf("relay/test-%d", rand.Uint64()) // advisory locks are the database's
	log := &memLog{}
	tl := &tally{by: map[string]map[string]int{}, all: map[string]bool{}}
	relays := map[string]*messaging.Relay{}
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	for _, label := range []string{"a", "b"} {
		r := messaging.NewRelay(log, tl.publisher(label), cps, messaging.RelayOptions{Name: name, BatchSize: 16,
			Leader: messaging.PostgresLeader(db, name, 20*time.Millisecond, watched), Logger: quiet})
		relays[label] = r
		rctx, stop := context.WithCancel(ctx)
		stops[label] = stop
		wg.Go(func() { _ = r.Run(rctx) })
	}
	t.Cleanup(func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	})
	published := func(n int) string { // the relay that has published n messages by itself
		t.Helper()
		deadline := time.Now().Add(20 * time.Second) // a guard against hangs
		for {
			distinct, by := tl.counts()
			for r, c := range by {
				if c == distinct && distinct == n && relays[r].Position() == uint64(n) {
					return r
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("want %d messages from one relay, checkpointed; have %d distinct, by relay %v", n, distinct, by)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Both run; one publishes, the other stands by.
	log.add(100)
	first := published(100)
	other := map[string]string{"a": "b", "b": "a"}[first]
	if _, by := tl.counts(); by[other] != 0 {
		t.Fatalf("the standby published %d messages", by[other])
	}

	// The publishing process stops: the other takes over from the
	// checkpoint, without publishing the first hundred again.
	stops[first]()
	log.add(100)
	deadline := time.Now().Add(20 * time.Second)
	for {
		distinct, by := tl.counts()
		if distinct == 200 && by[other] == 100 && relays[other].Position() == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the leader stopped: %d distinct, by relay %v", distinct, by)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Its database session dies (a killed process): the right passes on.
	rctx, stop := context.WithCancel(ctx)
	stops[first] = stop
	restarted := relays[first]
	wg.Go(func() { _ = restarted.Run(rctx) })
	h := fnv.New64a()
	h.Write([]byte("agora/" + name)) // PostgresLeader's lock key
	key := h.Sum64()
	var killed bool
	if err := db.QueryRowContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid`,
		int64(key>>32), int64(key&0xffffffff)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the leader's session: %v %v", killed, err)
	}
	log.add(100)
	deadline = time.Now().Add(20 * time.Second)
	for {
		if distinct, by := tl.counts(); distinct == 300 && (relays["a"].Position() == 300 || relays["b"].Position() == 300) &&
			strings.Contains(logged.String(), "lost the lock") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("after the leader's session died: %d distinct, by relay %v", distinct, by)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
