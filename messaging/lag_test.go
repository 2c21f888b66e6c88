package messaging_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
)

type discard struct{}

func (discard) Publish(context.Context, ...messaging.Message) error { return nil }

// bare is a Log that cannot tell its head.
type bare struct{ messaging.Log }

func TestRelayLagIsHeadMinusCheckpoint(t *testing.T) {
	ctx := context.Background()
	store, db := testenv.SQLite(t)
	cps, err := messaging.SQLCheckpoints(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// The event log: its head is the store's.
	events := messaging.NewRelay(messaging.EventLog(store, func(eventstore.Record) (messaging.Message, bool, error) {
		return messaging.Message{}, false, nil
	}), discard{}, cps, messaging.RelayOptions{Name: "events"})
	if events.Name() != "events" {
		t.Errorf("name %q", events.Name())
	}
	if lag, err := events.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("lag of an empty log = %d, %v", lag, err)
	}
	for range 3 {
		if _, err := store.Append(ctx, "s", eventstore.Any, eventstore.EventData{Type: "T", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if lag, err := events.Lag(ctx); err != nil || lag != 3 {
		t.Fatalf("lag = %d, %v; want 3", lag, err)
	}
	// The stored checkpoint counts, whoever moved it.
	if err := cps.Save(ctx, "events", 2); err != nil {
		t.Fatal(err)
	}
	if lag, err := events.Lag(ctx); err != nil || lag != 1 {
		t.Fatalf("lag after checkpoint 2 = %d, %v; want 1", lag, err)
	}

	// An outbox: its head is its highest position.
	ob, err := messaging.NewSQLOutbox(ctx, db, "lag_outbox", messaging.SQLiteAutoIncrement)
	if err != nil {
		t.Fatal(err)
	}
	outbox := messaging.NewRelay(ob, discard{}, cps, messaging.RelayOptions{Name: "outbox"})
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Add(ctx, tx, messaging.Message{ID: "a", Subject: "s", Type: "t", Data: []byte(`{}`)},
		messaging.Message{ID: "b", Subject: "s", Type: "t", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if lag, err := outbox.Lag(ctx); err != nil || lag != 2 {
		t.Fatalf("outbox lag = %d, %v; want 2", lag, err)
	}
	// A checkpoint past the head (the rows were pruned) is no lag.
	if err := cps.Save(ctx, "outbox", 5); err != nil {
		t.Fatal(err)
	}
	if lag, err := outbox.Lag(ctx); err != nil || lag != 0 {
		t.Fatalf("outbox lag past the head = %d, %v; want 0", lag, err)
	}

	r := messaging.NewRelay(bare{ob}, discard{}, cps, messaging.RelayOptions{Name: "bare"})
	if _, err := r.Lag(ctx); !errors.Is(err, messaging.ErrNoHead) {
		t.Fatalf("lag of a log without a head: %v, want ErrNoHead", err)
	}
}
