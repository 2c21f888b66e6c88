package saga_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/saga"
)

// TestIndexKeepsTheTenant: the index of instances records the tenant of
// what started each, and an index of an earlier release (no tenant
// column, its checkpoint at the head) gains the column and is replayed
// when the engine starts, so that its instances get theirs.
func TestIndexKeepsTheTenant(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for _, q := range []string{
			`CREATE TABLE projection_checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL)`,
			`CREATE TABLE saga_instances (id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL, updated_at BIGINT NOT NULL)`,
		} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		e := saga.NewEngine(store, db, saga.Options{Logger: quiet()})
		type none struct{}
		saga.Register(e, saga.Definition[none]{Type: "thing", Steps: []saga.Step[none]{
			{Name: "one", Action: func(context.Context, *saga.Exec[none]) error { return nil }},
		}})
		// Started by the earlier release, which indexed it without a
		// tenant and moved its checkpoint to the head.
		if _, err := e.Start(saga.WithMetadata(ctx, eventstore.Metadata{Tenant: "acme"}), "thing", "old", none{}); err != nil {
			t.Fatal(err)
		}
		head, err := store.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO saga_instances VALUES ('old', 'thing', 'Started', 1)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO projection_checkpoints VALUES ('saga.instances', $1)`, int64(head)); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = e.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if _, err := e.Start(saga.WithMetadata(ctx, eventstore.Metadata{Tenant: "demo"}), "thing", "new", none{}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"old", "new"} {
			if in, err := e.Wait(ctx, id); err != nil || in.Status != saga.Completed {
				t.Fatalf("%s: %v %v", id, in.Status, err)
			}
		}
		want := map[string]string{"old": "acme", "new": "demo"}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := map[string]string{}
			rows, err := db.QueryContext(ctx, `SELECT id, tenant, status FROM saga_instances`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, tenant, status string
				if err := rows.Scan(&id, &tenant, &status); err != nil {
					t.Fatal(err)
				}
				if status == string(saga.Completed) {
					got[id] = tenant
				}
			}
			rows.Close()
			if len(got) == 2 && got["old"] == want["old"] && got["new"] == want["new"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("index: %v, want %v completed", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Another start finds the column there and keeps its checkpoint.
		if err := e.Index().Init(ctx); err != nil {
			t.Fatal(err)
		}
		if e.Index().Position() == 0 {
			t.Error("the index was replayed again")
		}
	})
}
