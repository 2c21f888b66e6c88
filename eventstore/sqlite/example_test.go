package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
)

// Concurrent appends share commits: each returns once its events are
// durable, with its own result, and one append's conflict fails only that
// append.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "es")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	var wg sync.WaitGroup
	conflicts := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() {
			// Ten streams, each appended to twice with "no stream yet":
			// the second append to each stream must conflict.
			stream := fmt.Sprintf("cart-%d", i%5)
			_, err := store.Append(ctx, stream, eventstore.NoStream, eventstore.EventData{Type: "CartCreated"})
			if err != nil {
				conflicts <- err
			}
		})
	}
	wg.Wait()
	close(conflicts)
	for err := range conflicts {
		var c *eventstore.ConcurrencyError
		if !errors.As(err, &c) || c.Actual != 1 {
			panic(err)
		}
	}
	head, _ := store.Head(ctx)
	fmt.Println("events stored:", head, "conflicts:", 10-head)
	// Output: events stored: 5 conflicts: 5
}
