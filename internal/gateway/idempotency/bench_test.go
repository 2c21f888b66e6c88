package idempotency_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/gateway/idempotency"
)

// BenchmarkSQLStoreGet looks a key up among entries live keys (a retried
// request): one primary-key probe, whose cost must follow the B-tree's
// depth, not how many keys the TTL keeps. The 1M case fills its table in
// a few seconds; -short leaves it out.
func BenchmarkSQLStoreGet(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%s", sizeName(n)), func(b *testing.B) {
			if n > 10_000 && testing.Short() {
				b.Skip("-short: 10k only")
			}
			ctx := context.Background()
			db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(b.TempDir(), "keys.db"), false))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			s, err := idempotency.NewSQLStore(ctx, db, "idempotency_keys", nil)
			if err != nil {
				b.Fatal(err)
			}
			tx, err := db.Begin()
			if err != nil {
				b.Fatal(err)
			}
			expires := time.Now().Add(time.Hour).UnixMilli()
			for i := range n {
				if _, err := tx.Exec(`INSERT INTO idempotency_keys (key, fingerprint, owner, done, answer, expires_at) VALUES ($1, 'fp', 'owner', 1, '{"status":201}', $2)`, key(i), expires); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, ok, err := s.Get(ctx, key((i*7919)%n)); err != nil || !ok {
					b.Fatalf("Get: %v, %v", ok, err)
				}
			}
		})
	}
}

func key(i int) string {
	return fmt.Sprintf("user:customer-%d|POST /api/v1/orders|key-%012d", i%1000, i)
}

func sizeName(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}
