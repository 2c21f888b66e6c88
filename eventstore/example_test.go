package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
)

func Example() {
	dir, _ := os.MkdirTemp("", "es")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	opened := eventstore.EventData{Type: "AccountOpened", Data: json.RawMessage(`{"owner":"ada"}`)}
	res, _ := store.Append(ctx, "account-1", eventstore.NoStream, opened)
	fmt.Println("appended at position", res.LastPosition, "stream version", res.NextExpectedVersion)

	// A writer that read version 0 loses the race: a typed error says why.
	_, err = store.Append(ctx, "account-1", eventstore.NoStream, opened)
	var conflict *eventstore.ConcurrencyError
	if errors.As(err, &conflict) {
		fmt.Println("conflict: actual version", conflict.Actual)
	}

	recs, _ := store.ReadStream(ctx, "account-1", eventstore.StreamRead{})
	fmt.Println(recs[0].Type, string(recs[0].Data))
	// Output:
	// appended at position 1 stream version 1
	// conflict: actual version 1
	// AccountOpened {"owner":"ada"}
}

func ExampleSubscribe() {
	dir, _ := os.MkdirTemp("", "es")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	defer store.Close()
	store.Append(ctx, "a", eventstore.Any, eventstore.EventData{Type: "First"})

	seen := 0
	go store.Append(ctx, "a", eventstore.Any, eventstore.EventData{Type: "Second"})
	// Catch up from the start, then follow live appends.
	err := eventstore.Subscribe(ctx, store, 0, 100, func(_ context.Context, batch []eventstore.Record) error {
		for _, r := range batch {
			fmt.Println(r.Position, r.Type)
			seen++
		}
		if seen == 2 {
			cancel()
		}
		return nil
	})
	fmt.Println(err)
	// Output:
	// 1 First
	// 2 Second
	// context canceled
}

func ExampleUpcasters() {
	var up eventstore.Upcasters
	// Version 1 of "NameSet" had one field; version 2 splits it.
	up.Register("NameSet", 1, func(d json.RawMessage) (json.RawMessage, error) {
		var v struct{ Name string }
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]string{"first": v.Name, "last": ""})
	})
	r, _ := up.Upcast(eventstore.Record{Type: "NameSet", SchemaVersion: 1, Data: json.RawMessage(`{"Name":"Ada"}`)})
	fmt.Println(r.SchemaVersion, string(r.Data))
	// Output: 2 {"first":"Ada","last":""}
}
