package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/testenv"
)

// streamOwners maps a stream's category to the context that owns it:
// every stream a context's log holds must be one of its own.
var streamOwners = map[string]string{
	"account": "payments", "transfer": "payments", "order": "ordering", "stock": "inventory",
	"reservation": "inventory", "shipment": "shipping", "user": "identity", "audit": "identity",
}

// TestEachContextOwnsItsData: embedded, each context keeps its log and
// state under its own directory, and its log holds only its own streams
// (with positions of its own); the sagas live with the context that runs
// them. A data directory of the single-store layout is refused with the
// command that upgrades it.
func TestEachContextOwnsItsData(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	a := w.account(10_000)
	p := w.product(1_000, 5)
	id := w.order(a, p, 1, "62701")
	w.expect(id, "Confirmed", "")

	for _, d := range server.Modules {
		dirs := []string{filepath.Join(w.dir, d.Name)}
		if d.Partitioned {
			// Payments: its state, and a log and state per partition.
			if _, err := os.Stat(filepath.Join(w.dir, d.Name, "readmodels.db")); err != nil {
				t.Errorf("%s: %v", d.Name, err)
			}
			dirs = nil
			for k := range partition.Default {
				dirs = append(dirs, server.PartitionDir(w.dir, k))
			}
		}
		for _, dir := range dirs {
			for _, f := range []string{"events.db", "readmodels.db"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s: %v", d.Name, err)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(w.dir, "events.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a shared event log: %v", err)
	}
	ctx := context.Background()
	seen := map[string]int{}
	for _, c := range w.srv.Stores() {
		recs, err := c.Store.ReadAll(ctx, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if r.Position != uint64(i+1) {
				t.Errorf("%s: event %d at position %d: a log of its own has no gaps", c.Name, i+1, r.Position)
				break
			}
			cat, _, _ := strings.Cut(r.StreamID, "-")
			owner, known := streamOwners[cat]
			if cat == "saga" {
				owner, known = map[bool]string{true: "ordering", false: "payments"}[strings.HasPrefix(r.StreamID, "saga-checkout-")], true
			}
			log := c.Name
			if owner == partition.Context {
				// A payments stream lives in its key's partition.
				owner = partition.Log(partition.Of(partition.KeyOf(r.StreamID), partition.Default))
			}
			if known && owner != log {
				t.Errorf("%s's log holds %s (%s), which is %s's", c.Name, r.StreamID, r.Type, owner)
			}
			if _, ok := partition.ParseLog(log); ok {
				log = partition.Context
			}
			seen[log]++
		}
	}
	for _, name := range []string{"identity", "payments", "inventory", "ordering", "shipping"} {
		if seen[name] == 0 {
			t.Errorf("%s's log is empty after a checkout", name)
		}
	}

	// A data directory an earlier release wrote: refused, saying how to
	// upgrade it.
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, "events.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := server.Open(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: old, Logger: testLogger()})
	if err == nil || !strings.Contains(err.Error(), "agora migrate split") {
		t.Fatalf("an old layout: %v", err)
	}
}

// TestEachContextHasItsOwnSchemaAndRole: on PostgreSQL each context keeps
// its data in schema <prefix>_<context>, owned by role agora_<context>,
// and working as one context's role, every other context's tables are
// refused (permission denied) while its own answer.
func TestEachContextHasItsOwnSchemaAndRole(t *testing.T) {
	w := bootWith(t, server.Orchestration, "external")
	a := w.account(10_000)
	p := w.product(1_000, 5)
	id := w.order(a, p, 1, "62701")
	w.expect(id, "Confirmed", "")

	ctx := context.Background()
	prefix := w.schema
	conn, err := pgx.Connect(ctx, w.pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A table of each context's: its event log's.
	tables := map[string]string{}
	for _, d := range server.Modules {
		schema := server.PostgresSchemaOf(prefix, d.Name)
		var owner string
		if err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1`, schema).Scan(&owner); err != nil {
			t.Fatalf("schema %s: %v", schema, err)
		}
		if owner != server.PostgresRoleOf(d.Name) {
			t.Errorf("schema %s is owned by %s, want %s", schema, owner, server.PostgresRoleOf(d.Name))
		}
		tables[d.Name] = pgx.Identifier{schema, "events"}.Sanitize()
		if d.Partitioned {
			// Payments' logs are its partitions': schemas of its own too.
			for k := range partition.Default {
				ps := server.PartitionSchemaOf(prefix, k)
				if err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1`, ps).Scan(&owner); err != nil ||
					owner != server.PostgresRoleOf(d.Name) {
					t.Errorf("schema %s is owned by %q (%v), want %s", ps, owner, err, server.PostgresRoleOf(d.Name))
				}
			}
			tables[d.Name] = pgx.Identifier{server.PartitionSchemaOf(prefix, 0), "events"}.Sanitize()
		}
	}
	refused, own := 0, 0
	for _, d := range server.Modules {
		role := server.PostgresRoleOf(d.Name)
		for _, other := range server.Modules {
			err := asRole(ctx, conn, role, `SELECT count(*) FROM `+tables[other.Name])
			var pgErr *pgconn.PgError
			switch {
			case other.Name == d.Name && err != nil:
				t.Errorf("%s reading its own log: %v", role, err)
			case other.Name != d.Name && !(errors.As(err, &pgErr) && pgErr.Code == "42501"):
				t.Errorf("%s reading %s's log: %v, want permission denied", role, other.Name, err)
			case other.Name == d.Name:
				own++
			default:
				refused++
				if d.Name == "ordering" && other.Name == "payments" {
					t.Logf("as %s, SELECT count(*) FROM %s: %v", role, tables[other.Name], err)
				}
			}
		}
	}
	t.Logf("%d roles: each read its own log; %d reads of another context's log refused with 42501", own, refused)
}

// asRole runs query q as role, in a transaction it rolls back.
func asRole(ctx context.Context, conn *pgx.Conn, role, q string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, q)
	return err
}

// TestWithoutCreateRoleEachContextStillHasItsSchema: a shared URL whose
// user may not create roles still gives each context its own schema (a
// warning says the database does not keep them apart), rather than
// refusing to start.
func TestWithoutCreateRoleEachContextStillHasItsSchema(t *testing.T) {
	pg := testenv.PostgresURL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	user := fmt.Sprintf("agora_test_user_%d", rand.Uint32())
	prefix := fmt.Sprintf("norole_%d", rand.Uint64())
	for _, q := range []string{`CREATE ROLE ` + user + ` LOGIN NOCREATEROLE`, `GRANT CREATE ON DATABASE ` + pgx.Identifier{conn.Config().Database}.Sanitize() + ` TO ` + user} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = postgres.DropSchema(context.Background(), pg, prefix)
		c, err := pgx.Connect(context.Background(), pg)
		if err == nil {
			c.Exec(context.Background(), `REVOKE CREATE ON DATABASE `+pgx.Identifier{c.Config().Database}.Sanitize()+` FROM `+user) //nolint:errcheck // cleanup
			c.Exec(context.Background(), `DROP ROLE `+user)                                                                         //nolint:errcheck // cleanup
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(pg)
	u.User = url.User(user)
	srv, stop, err := server.Start(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), PostgresURL: u.String(), PostgresSchema: prefix,
		Logger: testLogger()})
	if err != nil {
		t.Fatalf("a user without CREATEROLE: %v", err)
	}
	defer stop()
	for _, d := range server.Modules {
		var owner string
		if err := conn.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1`, server.PostgresSchemaOf(prefix, d.Name)).Scan(&owner); err != nil || owner != user {
			t.Errorf("%s's schema: owner %q, %v", d.Name, owner, err)
		}
	}
	// A log per context, payments' one per partition.
	if len(srv.Stores()) != len(server.Modules)-1+partition.Default {
		t.Errorf("%d stores", len(srv.Stores()))
	}
}

// TestPaymentsPartitionCountIsRecorded: the first start records payments'
// partition count; a start with another count refuses and says how to
// change it, and one with the recorded count starts.
func TestPaymentsPartitionCountIsRecorded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(n int) error {
		srv, err := server.Open(ctx, server.Config{Addr: "127.0.0.1:0", DataDir: dir, PaymentsPartitions: n, Logger: testLogger()})
		if err == nil {
			srv.Close()
		}
		return err
	}
	if err := open(2); err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		if _, err := os.Stat(filepath.Join(server.PartitionDir(dir, k), "events.db")); err != nil {
			t.Errorf("partition %d: %v", k, err)
		}
	}
	err := open(3)
	if !errors.Is(err, partition.ErrCountChanged) || !strings.Contains(err.Error(), "agora payments reshard --to 3") {
		t.Errorf("another count: %v", err)
	}
	if _, err := os.Stat(server.PartitionDir(dir, 2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start made partition 2: %v", err)
	}
	if err := open(2); err != nil {
		t.Errorf("the recorded count: %v", err)
	}
}
