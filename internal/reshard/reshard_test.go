package reshard_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/reshard"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
)

var usd = money.MustCurrency("USD")

// layout writes payments' store in dataDir with n partitions, as the
// server does: 40 accounts, deposits, and transfer legs between them.
// It answers each account's balance.
func layout(t *testing.T, dataDir string, n int) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	state := openDB(t, filepath.Join(server.ContextDir(dataDir, partition.Context), "readmodels.db"))
	if err := partition.Record(ctx, state, n, func() (bool, error) { return false, nil }); err != nil {
		t.Fatal(err)
	}
	state.Close()
	stores := make([]eventstore.Store, n)
	for k := range n {
		d := server.PartitionDir(dataDir, k)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.Open(ctx, filepath.Join(d, "events.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores[k] = st
	}
	svc := app.NewService(stores...)
	want := map[string]int64{}
	for i := range 40 {
		id := fmt.Sprintf("acct-%02d", i)
		if _, err := svc.Open(ctx, eventstore.Metadata{}, app.OpenAccount{ID: id, OwnerID: "u", Initial: money.New(int64(1000+i), usd)}); err != nil {
			t.Fatal(err)
		}
		want[id] = int64(1000 + i)
	}
	for i := range 40 {
		from, to := fmt.Sprintf("acct-%02d", i), fmt.Sprintf("acct-%02d", (i*7+3)%40)
		key := fmt.Sprintf("transfer:t%d", i)
		if _, err := svc.Debit(ctx, eventstore.Metadata{}, from, key, key, money.New(100, usd)); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Credit(ctx, eventstore.Metadata{}, to, key, key, money.New(100, usd)); err != nil {
			t.Fatal(err)
		}
		want[from] -= 100
		want[to] += 100
	}
	return want
}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", sqlite.DSN(path, false))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// balancesIn folds every account of dataDir's n partitions, checking
// each stream lives in its partition.
func balancesIn(t *testing.T, dataDir string, n int) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	stores := make([]eventstore.Store, n)
	for k := range n {
		st, err := sqlite.Open(ctx, filepath.Join(server.PartitionDir(dataDir, k), "events.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores[k] = st
		recs, err := st.ReadAll(ctx, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if partition.Of(partition.KeyOf(r.StreamID), n) != k || r.Position != uint64(i+1) {
				t.Errorf("partition %d of %d holds %s at %d", k, n, r.StreamID, r.Position)
			}
		}
	}
	svc := app.NewService(stores...)
	out := map[string]int64{}
	for i := range 40 {
		id := fmt.Sprintf("acct-%02d", i)
		a, _, err := svc.Get(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		out[id] = a.Balance
	}
	return out
}

func TestReshardMovesEveryStreamAndKeepsEveryBalance(t *testing.T) {
	dir := t.TempDir()
	want := layout(t, dir, 4)
	ctx := context.Background()
	for _, to := range []int{2, 5, 1} {
		var calls int
		rep, err := reshard.Run(ctx, dir, to, func(done, total int) { calls++ })
		if err != nil {
			t.Fatalf("→ %d: %v", to, err)
		}
		if rep.Accounts != 40 || rep.Totals["USD"] != 40*1000+780 || calls == 0 {
			t.Errorf("→ %d: %+v, %d progress calls", to, rep, calls)
		}
		got := balancesIn(t, dir, to)
		for id, b := range want {
			if got[id] != b {
				t.Errorf("→ %d: %s holds %d, want %d", to, id, got[id], b)
			}
		}
		state := openDB(t, filepath.Join(server.ContextDir(dir, partition.Context), "readmodels.db"))
		n, err := partition.Recorded(ctx, state)
		state.Close()
		if err != nil || n != to {
			t.Errorf("→ %d: recorded %d, %v", to, n, err)
		}
		if _, err := os.Stat(server.PartitionDir(dir, to)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("→ %d: partition %d is still there: %v", to, to, err)
		}
	}
	if _, err := reshard.Run(ctx, dir, 1, nil); !errors.Is(err, reshard.ErrSame) {
		t.Errorf("to the same count: %v", err)
	}
}

func TestReshardThatFailsLeavesTheOldLayout(t *testing.T) {
	dir := t.TempDir()
	want := layout(t, dir, 3)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := reshard.Run(ctx, dir, 2, func(done, total int) {
		if done > total/2 {
			cancel() // part-way through the move
		}
	})
	if err == nil {
		t.Fatal("a cancelled reshard succeeded")
	}
	if _, err := os.Stat(filepath.Join(server.ContextDir(dir, partition.Context), ".reshard")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the staging directory is left: %v", err)
	}
	got := balancesIn(t, dir, 3)
	for id, b := range want {
		if got[id] != b {
			t.Errorf("%s holds %d after a failed reshard, want %d", id, got[id], b)
		}
	}
	state := openDB(t, filepath.Join(server.ContextDir(dir, partition.Context), "readmodels.db"))
	defer state.Close()
	if err := partition.Record(context.Background(), state, 3, func() (bool, error) { return false, nil }); err != nil {
		t.Errorf("the old count: %v", err)
	}
	if err := partition.Record(context.Background(), state, 2, func() (bool, error) { return false, nil }); !errors.Is(err, partition.ErrCountChanged) {
		t.Errorf("another count: %v", err)
	}
}

// TestReshardOnPostgres reshards payments in PostgreSQL schemas that
// agora serve made: 4 → 2 → 3 partitions, every balance kept, each
// stream in its partition's schema, the count recorded and the old
// schemas gone.
func TestReshardOnPostgres(t *testing.T) {
	pg := testenv.PostgresURL(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("reshard%d", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { postgres.DropSchema(context.Background(), pg, prefix) })
	cfg := func(n int) server.Config {
		return server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), PostgresURL: pg, PostgresSchema: prefix, PaymentsPartitions: n,
			NATSNamespace: prefix, Logger: slog.New(slog.DiscardHandler)}
	}
	// balances opens the platform with n partitions and answers every
	// account's balance (writing want's accounts first when asked).
	balances := func(n int, write bool) map[string]int64 {
		t.Helper()
		srv, err := server.Open(ctx, cfg(n))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		svc := srv.Service(partition.Context).(*app.Service)
		if write {
			for i := range 30 {
				id := fmt.Sprintf("pg-%02d", i)
				if _, err := svc.Open(ctx, eventstore.Metadata{}, app.OpenAccount{ID: id, OwnerID: "u", Initial: money.New(500, usd)}); err != nil {
					t.Fatal(err)
				}
				key := fmt.Sprintf("transfer:%d", i)
				if _, err := svc.Credit(ctx, eventstore.Metadata{}, id, key, key, money.New(int64(i+1), usd)); err != nil {
					t.Fatal(err)
				}
			}
		}
		out := map[string]int64{}
		for i := range 30 {
			id := fmt.Sprintf("pg-%02d", i)
			a, _, err := svc.Get(ctx, id)
			if err != nil {
				t.Fatalf("%d partitions: %s: %v", n, id, err)
			}
			out[id] = a.Balance
		}
		return out
	}
	want := balances(4, true)
	for _, to := range []int{2, 3} {
		rep, err := reshard.RunPostgres(ctx, cfg(to), to, nil)
		if err != nil {
			t.Fatalf("→ %d: %v", to, err)
		}
		if rep.Accounts != 31 || rep.Totals["USD"] != 30*500+465 { // and the merchant's
			t.Errorf("→ %d: %+v", to, rep)
		}
		got := balances(to, false)
		for id, b := range want {
			if got[id] != b {
				t.Errorf("→ %d: %s holds %d, want %d", to, id, got[id], b)
			}
		}
		if _, err := server.Open(ctx, cfg(4)); !errors.Is(err, partition.ErrCountChanged) {
			t.Errorf("→ %d: a start with 4: %v", to, err)
		}
	}
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE starts_with(nspname, $1)`, prefix+"_payments_").Scan(&n); err != nil || n != 3 {
		t.Errorf("payments' schemas: %d (want its 3 partitions'), %v", n, err)
	}
	if _, err := reshard.RunPostgres(ctx, cfg(3), 3, nil); !errors.Is(err, reshard.ErrSame) {
		t.Errorf("to the same count: %v", err)
	}
}
