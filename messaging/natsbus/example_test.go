package natsbus_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// The event store as the outbox: a relay publishes the payments events
// that are part of the published language to an embedded JetStream, and
// a durable consumer handles each exactly once through its inbox.
func Example() {
	dir, _ := os.MkdirTemp("", "bus")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	defer store.Close()
	db, _ := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "shipping.db"), false))
	db.SetMaxOpenConns(1)
	defer db.Close()
	bus, err := natsbus.Open(ctx, natsbus.Options{DataDir: filepath.Join(dir, "nats"), Logger: quiet()})
	if err != nil {
		panic(err)
	}
	defer bus.Close()
	bus.EnsureStream(ctx, "payments", "payments.>")

	// The outbox side: map domain events to integration events.
	cps, _ := messaging.SQLCheckpoints(ctx, db)
	relay := messaging.NewRelay(messaging.EventLog(store, func(r eventstore.Record) (messaging.Message, bool, error) {
		if r.Type != "payments.MoneyDeposited" {
			return messaging.Message{}, false, nil // internal: not published
		}
		return messaging.Message{Subject: "payments.money.deposited", Type: "payments.MoneyDeposited.v1", Data: r.Data}, true, nil
	}), bus, cps, messaging.RelayOptions{Name: "payments", Tail: bus.Tail("payments"), Logger: quiet()})
	bus.OnReconnect(relay.RequestRewind)
	go relay.Run(ctx)

	// The inbox side.
	inbox, _ := messaging.NewInbox(ctx, db, "notifier")
	got := make(chan string)
	go bus.Subscribe(ctx, messaging.Consumer{Name: "notifier", Stream: "payments"}, func(ctx context.Context, d messaging.Delivery) error {
		_, err := inbox.Handle(ctx, d.ID, func(tx *sql.Tx) error {
			got <- fmt.Sprintf("%s %s %s", d.Subject, d.Type, d.Data)
			return nil
		})
		return err
	})

	store.Append(ctx, "account-1", eventstore.Any,
		eventstore.EventData{Type: "payments.AccountOpened", Data: json.RawMessage(`{}`)},
		eventstore.EventData{Type: "payments.MoneyDeposited", Data: json.RawMessage(`{"amount":500}`)})
	fmt.Println(<-got)
	// Output: payments.money.deposited payments.MoneyDeposited.v1 {"amount":500}
}
