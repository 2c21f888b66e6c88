package projection_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/projection"
)

// typeCounts counts events by type.
type typeCounts struct{}

func (typeCounts) Name() string { return "type_counts" }

func (typeCounts) Setup(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS type_counts (type TEXT PRIMARY KEY, n BIGINT NOT NULL)`)
	return err
}

func (typeCounts) Apply(ctx context.Context, tx *sql.Tx, batch []eventstore.Record) error {
	for _, r := range batch {
		if _, err := tx.ExecContext(ctx, `INSERT INTO type_counts (type, n) VALUES ($1, 1)
			ON CONFLICT (type) DO UPDATE SET n = type_counts.n + 1`, r.Type); err != nil {
			return err
		}
	}
	return nil
}

func (typeCounts) Reset(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM type_counts`)
	return err
}

func Example() {
	dir, _ := os.MkdirTemp("", "proj")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "es.db"), sqlite.Options{})
	defer store.Close()
	db, _ := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "rm.db"), false))
	defer db.Close()

	runner := projection.NewRunner(store, db, typeCounts{}, projection.Options{})
	go runner.Run(ctx)

	store.Append(ctx, "order-1", eventstore.NoStream, eventstore.EventData{Type: "OrderPlaced"})
	res, _ := store.Append(ctx, "order-2", eventstore.NoStream, eventstore.EventData{Type: "OrderPlaced"})

	// Read your writes: wait until the read model includes the append.
	runner.WaitFor(ctx, res.LastPosition)
	var n int
	db.QueryRow(`SELECT n FROM type_counts WHERE type = 'OrderPlaced'`).Scan(&n)
	fmt.Println("orders placed:", n)
	// Output: orders placed: 2
}
