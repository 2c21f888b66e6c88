// Package testenv gives tests an event store and a read-model database on
// each storage engine: SQLite in a temporary directory always, and
// PostgreSQL in a fresh schema (dropped afterwards) when
// AGORA_TEST_POSTGRES_URL is set — otherwise that case skips, saying so.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/sqlite"
)

// PostgresURL returns AGORA_TEST_POSTGRES_URL or skips t.
func PostgresURL(t testing.TB) string {
	url := os.Getenv("AGORA_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("AGORA_TEST_POSTGRES_URL not set; skipping PostgreSQL tests (.ci/run sets it)")
	}
	return url
}

// Backends runs f as a subtest per engine, each with a fresh store and
// read-model database closed when the subtest ends.
func Backends(t *testing.T, f func(t *testing.T, store eventstore.Store, db *sql.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		store, db := SQLite(t)
		f(t, store, db)
	})
	t.Run("postgres", func(t *testing.T) {
		store, db := Postgres(t)
		f(t, store, db)
	})
}

// SQLite opens a store and a read-model database in t's temp directory.
func SQLite(t testing.TB) (eventstore.Store, *sql.DB) {
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "es.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "rm.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return store, db
}

// Postgres opens a store and a read-model database in a fresh schema.
func Postgres(t testing.TB) (eventstore.Store, *sql.DB) {
	url := PostgresURL(t)
	schema := fmt.Sprintf("test_%d", rand.Uint64())
	t.Cleanup(func() {
		if err := postgres.DropSchema(context.Background(), url, schema); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	store, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sql.Open("pgx", postgres.WithSearchPath(url, schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store, db
}
