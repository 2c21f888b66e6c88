package readmodel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/money"
	"github.com/agora-commerce/agora/projection"
)

// TestQueries drives the account summary through the service and the
// projection on each engine, then checks every query against the state
// the commands produced.
func TestQueries(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		svc := app.NewService(store)
		r := projection.NewRunner(store, db, readmodel.Projection{}, projection.Options{})
		go r.Run(ctx)
		usd := func(n int64) money.Money { return money.New(n, money.MustCurrency("USD")) }
		var last uint64
		must := func(res app.Result, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			last = res.Position
		}
		// a-0 … a-9 open with 0, 100, …, 900; a-0 closes; a-5 gets 50 more
		// and loses 20.
		for i := range 10 {
			must(svc.Open(ctx, eventstore.Metadata{}, app.OpenAccount{ID: fmt.Sprintf("a-%d", i), OwnerID: "o", Initial: usd(int64(i) * 100)}))
		}
		// b-0 belongs to another tenant: no list of the default one shows it.
		must(svc.Open(ctx, eventstore.Metadata{Tenant: "other"}, app.OpenAccount{ID: "b-0", OwnerID: "o", Initial: usd(5000)}))
		must(svc.Close(ctx, app.System, eventstore.Metadata{}, "a-0"))
		must(svc.Deposit(ctx, app.System, eventstore.Metadata{}, "a-5", app.Exactly(usd(50))))
		must(svc.Withdraw(ctx, app.System, eventstore.Metadata{}, "a-5", app.Exactly(usd(20))))
		if err := r.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
		q := readmodel.NewQueries(db)

		s, err := q.Get(ctx, "a-5")
		if err != nil {
			t.Fatal(err)
		}
		if s.Balance != usd(530) || s.Status != "Active" || s.TransactionCount != 3 || s.Version != 3 || s.OwnerID != "o" || s.LastActivity.Before(s.OpenedAt) {
			t.Fatalf("a-5 = %+v", s)
		}
		if _, err := q.Get(ctx, "nope"); !errors.Is(err, payments.ErrNotOpen) {
			t.Fatalf("Get(nope) = %v", err)
		}

		ids := func(f readmodel.Filter) []string {
			t.Helper()
			var out []string
			for pages := 0; ; pages++ {
				p, err := q.List(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Items) > f.Limit {
					t.Fatalf("page of %d > limit %d", len(p.Items), f.Limit)
				}
				for _, s := range p.Items {
					out = append(out, s.ID)
				}
				if p.NextCursor == "" {
					return out
				}
				f.Cursor = p.NextCursor
			}
		}
		closed, active := payments.Closed, payments.Active
		minBal := int64(500)
		for _, c := range []struct {
			name string
			f    readmodel.Filter
			want string
		}{
			{"all", readmodel.Filter{Tenant: "demo", Limit: 3}, "[a-0 a-1 a-2 a-3 a-4 a-5 a-6 a-7 a-8 a-9]"},
			{"closed", readmodel.Filter{Tenant: "demo", Status: &closed, Limit: 3}, "[a-0]"},
			{"active", readmodel.Filter{Tenant: "demo", Status: &active, Limit: 4}, "[a-1 a-2 a-3 a-4 a-5 a-6 a-7 a-8 a-9]"},
			{"balance >= 500", readmodel.Filter{Tenant: "demo", MinBalance: &minBal, Limit: 2}, "[a-5 a-6 a-7 a-8 a-9]"},
			{"active and balance >= 500", readmodel.Filter{Tenant: "demo", Status: &active, MinBalance: &minBal, Limit: 10}, "[a-5 a-6 a-7 a-8 a-9]"},
			{"the other tenant", readmodel.Filter{Tenant: "other", Limit: 10}, "[b-0]"},
		} {
			if got := fmt.Sprint(ids(c.f)); got != c.want {
				t.Errorf("%s: %s, want %s", c.name, got, c.want)
			}
		}
		if _, err := q.List(ctx, readmodel.Filter{Limit: 1, Cursor: "not-a-cursor"}); errs.CodeOf(err) != errs.Invalid {
			t.Fatalf("bad cursor: %v", err)
		}

		// A rebuild from the log reproduces the same summary.
		if _, err := db.ExecContext(ctx, `UPDATE payments_accounts SET balance = 0`); err != nil {
			t.Fatal(err)
		}
		if err := r.Rebuild(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if s2, err := q.Get(ctx, "a-5"); err != nil || s2.Balance != s.Balance || s2.TransactionCount != s.TransactionCount {
			t.Fatalf("after rebuild a-5 = %+v, %v", s2, err)
		}
	})
}
