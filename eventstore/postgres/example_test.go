package postgres_test

import (
	"context"
	"fmt"
	"os"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
)

// Open a store on a PostgreSQL database (the schema is created and
// migrated on open), append, and follow the global log. It needs a
// database, so go test compiles it without running it; the conformance
// suite runs the same calls against a real server in CI.
func ExampleOpen() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := postgres.Open(ctx, os.Getenv("AGORA_POSTGRES_URL"), postgres.Options{Schema: "shop"})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	res, err := store.Append(ctx, "order-42", eventstore.NoStream,
		eventstore.EventData{Type: "OrderPlaced", Data: []byte(`{"total":{"amount":1999,"currency":"USD"}}`)})
	if err != nil {
		panic(err)
	}
	// Subscribers never skip an event that commits late: positions become
	// visible strictly in order, and LISTEN/NOTIFY wakes them.
	_ = eventstore.Subscribe(ctx, store, res.LastPosition-1, 100, func(_ context.Context, batch []eventstore.Record) error {
		for _, r := range batch {
			fmt.Println(r.Position, r.StreamID, r.Type)
		}
		cancel()
		return nil
	})
}
