package bff_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/bff"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

func deliver(t *testing.T, p *bff.Popularity, subject, typ string, body any) {
	t.Helper()
	m, err := messaging.NewMessage(subject, typ, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(context.Background(), messaging.Delivery{Message: m, Attempt: 1}); err != nil {
		t.Fatalf("handle %s: %v", typ, err)
	}
}

func placed(t *testing.T, p *bff.Popularity, order string, lines ...orderingapi.Line) {
	t.Helper()
	deliver(t, p, orderingapi.SubjectOrderPlaced, orderingapi.TypeOrderPlaced, orderingapi.OrderPlaced{OrderID: order,
		CustomerID: "u-ann", Lines: lines, Total: money.New(100, money.MustCurrency("USD"))})
}

func confirmed(t *testing.T, p *bff.Popularity, order string) {
	t.Helper()
	deliver(t, p, orderingapi.SubjectOrderConfirmed, orderingapi.TypeOrderConfirmed, orderingapi.OrderConfirmed{OrderID: order})
}

func cancelled(t *testing.T, p *bff.Popularity, order string) {
	t.Helper()
	deliver(t, p, orderingapi.SubjectOrderCancelled, orderingapi.TypeOrderCancelled, orderingapi.OrderCancelled{OrderID: order, Reason: "out_of_stock"})
}

func line(product string, qty int64) orderingapi.Line {
	return orderingapi.Line{ProductID: product, Quantity: qty}
}

func newPopularity(t *testing.T, db *sql.DB) *bff.Popularity {
	t.Helper()
	p, err := bff.NewPopularity(context.Background(), db, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// top reads the best sellers through a fresh counter on db, so that no
// copy of an earlier read answers.
func top(t *testing.T, db *sql.DB, n int) []string {
	t.Helper()
	ids, err := newPopularity(t, db).Top(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func flush(t *testing.T, p *bff.Popularity) {
	t.Helper()
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPopularityCountsConfirmedOrders(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		p := newPopularity(t, db)
		if ids, err := p.Top(context.Background(), 10); err != nil || len(ids) != 0 {
			t.Fatalf("nothing sold yet: %v %v", ids, err)
		}

		placed(t, p, "o-1", line("a", 2), line("b", 1))
		placed(t, p, "o-2", line("b", 5))
		placed(t, p, "o-3", line("c", 100)) // cancelled: never counted
		placed(t, p, "o-4", line("d", 50))  // never confirmed
		confirmed(t, p, "o-1")
		confirmed(t, p, "o-2")
		cancelled(t, p, "o-3")
		confirmed(t, p, "o-3")     // a confirmation after the cancellation counts nothing
		confirmed(t, p, "o-ghost") // a confirmation of an order never seen placed counts nothing
		confirmed(t, p, "o-1")     // redelivered: counted once

		// Placements are not sales until flushed.
		if ids := top(t, db, 10); len(ids) != 0 {
			t.Fatalf("before a flush: %v", ids)
		}
		flush(t, p)
		if ids := top(t, db, 10); !slices.Equal(ids, []string{"b", "a"}) {
			t.Fatalf("best sellers %v, want [b a] (b: 6, a: 2)", ids)
		}
		if ids := top(t, db, 1); !slices.Equal(ids, []string{"b"}) {
			t.Fatalf("the best seller %v", ids)
		}
		flush(t, p) // nothing new: nothing changes
		if ids := top(t, db, 10); !slices.Equal(ids, []string{"b", "a"}) {
			t.Fatalf("after an empty flush: %v", ids)
		}

		// Later sales add to the counts; ties go by product ID.
		placed(t, p, "o-5", line("a", 4), line("e", 6))
		confirmed(t, p, "o-5")
		flush(t, p)
		if ids := top(t, db, 10); !slices.Equal(ids, []string{"a", "b", "e"}) {
			t.Fatalf("best sellers %v, want [a b e] (a: 6+, b: 6, e: 6)", ids)
		}
		placed(t, p, "o-6", line("d", 1))
		confirmed(t, p, "o-6")
		flush(t, p)
		if ids := top(t, db, 10); !slices.Equal(ids, []string{"a", "b", "e", "d"}) {
			t.Fatalf("best sellers %v", ids)
		}
		// The counter's own reads come from the table too.
		if ids, err := newPopularity(t, db).Top(context.Background(), 2); err != nil || !slices.Equal(ids, []string{"a", "b"}) {
			t.Fatalf("top 2: %v %v", ids, err)
		}
	})
}

func TestPopularityIgnoresBadEvents(t *testing.T) {
	_, db := testenv.SQLite(t)
	p := newPopularity(t, db)
	for _, m := range []messaging.Message{
		{Subject: orderingapi.SubjectOrderPlaced, Type: orderingapi.TypeOrderPlaced, Data: []byte(`{"order_id": 7`)},
		{Subject: orderingapi.SubjectOrderConfirmed, Type: orderingapi.TypeOrderConfirmed, Data: []byte(`[]`)},
		{Subject: orderingapi.SubjectOrderCancelled, Type: orderingapi.TypeOrderCancelled, Data: []byte(`nope`)},
		{Subject: "ordering.order.other", Type: "ordering.Other.v1", Data: []byte(`{}`)},
	} {
		if err := p.Handle(context.Background(), messaging.Delivery{Message: m, Attempt: 1}); err != nil {
			t.Fatalf("%s: %v", m.Type, err)
		}
	}
	placed(t, p, "o-1", line("a", 1))
	confirmed(t, p, "o-1")
	flush(t, p)
	if ids := top(t, db, 10); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("best sellers %v", ids)
	}
}

// TestPopularityKeepsFailedFlushes: counts a flush could not write are
// written by the next one, once.
func TestPopularityKeepsFailedFlushes(t *testing.T) {
	_, db := testenv.SQLite(t)
	p := newPopularity(t, db)
	placed(t, p, "o-1", line("a", 3))
	confirmed(t, p, "o-1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Flush(ctx); err == nil {
		t.Fatal("a flush on a cancelled context succeeded")
	}
	if ids := top(t, db, 10); len(ids) != 0 {
		t.Fatalf("after a failed flush: %v", ids)
	}
	placed(t, p, "o-2", line("b", 2))
	confirmed(t, p, "o-2")
	flush(t, p)
	flush(t, p)
	if ids := top(t, db, 10); !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("best sellers %v, want [a b] (a: 3, b: 2)", ids)
	}
	// Once more, to see a: 3 was not written twice: b overtakes it at 4.
	placed(t, p, "o-3", line("b", 2))
	confirmed(t, p, "o-3")
	flush(t, p)
	if ids := top(t, db, 10); !slices.Equal(ids, []string{"b", "a"}) {
		t.Fatalf("best sellers %v, want [b a] (a: 3, b: 4)", ids)
	}
}

// TestPopularityRunFlushesOnStop: what was counted when Run stops is
// written before it returns.
func TestPopularityRunFlushesOnStop(t *testing.T) {
	_, db := testenv.SQLite(t)
	p := newPopularity(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	placed(t, p, "o-1", line("z", 9))
	confirmed(t, p, "o-1")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if ids := top(t, db, 10); !slices.Equal(ids, []string{"z"}) {
		t.Fatalf("after Run stopped: %v", ids)
	}
}
