package saga_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/saga"
)

type transfer struct {
	From, To string
	Amount   int64
}

// A transfer as a saga: money leaves one account and arrives at the other,
// or it fails and the withdrawal is undone.
func Example() {
	dir, _ := os.MkdirTemp("", "saga")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	defer store.Close()
	db, _ := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "sagas.db"), false))
	defer db.Close()

	balances := map[string]int64{"alice": 100, "bob": 0}
	closed := map[string]bool{"bob": true}
	e := saga.NewEngine(store, db, saga.Options{Logger: quiet()})
	saga.Register(e, saga.Definition[transfer]{
		Type: "transfer",
		Steps: []saga.Step[transfer]{
			{
				Name: "withdraw",
				Action: func(ctx context.Context, x *saga.Exec[transfer]) error {
					if balances[x.Data.From] < x.Data.Amount {
						return saga.Fail("insufficient_funds")
					}
					balances[x.Data.From] -= x.Data.Amount
					return nil
				},
				Compensate: func(ctx context.Context, x *saga.Exec[transfer]) error {
					balances[x.Data.From] += x.Data.Amount // refund
					return nil
				},
			},
			{
				Name: "deposit",
				Action: func(ctx context.Context, x *saga.Exec[transfer]) error {
					if closed[x.Data.To] {
						return saga.Fail("account_closed")
					}
					balances[x.Data.To] += x.Data.Amount
					return nil
				},
			},
		},
	})
	go e.Run(ctx)

	e.Start(ctx, "transfer", "t-1", transfer{From: "alice", To: "bob", Amount: 30})
	in, _ := e.Wait(ctx, "t-1")
	fmt.Println(in.Status, in.Reason, balances["alice"], balances["bob"])
	for _, s := range in.Steps {
		fmt.Println(s.Name, s.Status)
	}
	// Output:
	// Compensated account_closed 100 0
	// withdraw Compensated
	// deposit Failed
}
