package reshard_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/reshard"
	"github.com/agora-commerce/agora/internal/server"
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
