package messaging_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/messaging"
)

// BenchmarkInboxDuplicate hands an inbox of entries handled messages one
// it has handled (a redelivery): the check is one primary-key probe, so
// its cost must follow the B-tree's depth, not the inbox's history. The
// 1M case fills its table in a few seconds; -short leaves it out.
func BenchmarkInboxDuplicate(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("entries=%s", sizeName(n)), func(b *testing.B) {
			if n > 10_000 && testing.Short() {
				b.Skip("-short: 10k only")
			}
			ctx := context.Background()
			db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(b.TempDir(), "inbox.db"), false))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			in, err := messaging.NewInbox(ctx, db, "bench")
			if err != nil {
				b.Fatal(err)
			}
			tx, err := db.Begin()
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if _, err := tx.Exec(`INSERT INTO messaging_inbox (consumer, message_id, handled_at) VALUES ('bench', $1, $2)`, msgID(i), time.Now().UnixNano()); err != nil {
					b.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				done, err := in.Handle(ctx, msgID((i*7919)%n), func(*sql.Tx) error { return nil })
				if err != nil || done {
					b.Fatalf("a redelivery: done %v, %v", done, err)
				}
			}
		})
	}
}

func msgID(i int) string { return fmt.Sprintf("0193a5c2-7d4e-7000-8000-%012d", i) }

func sizeName(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}
