package products_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/ordering/products"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

var usd = money.MustCurrency("USD")

// event is the catalog's integration event of product id at version,
// priced amount, relayed at catalog position pos (0: no position).
func event(id string, version, amount int64, pos uint64) messaging.Delivery {
	typ, subject := catalogapi.TypeProductUpdated, catalogapi.SubjectProductUpdated
	if version == 1 {
		typ, subject = catalogapi.TypeProductCreated, catalogapi.SubjectProductCreated
	}
	m, err := messaging.NewMessage(subject, typ, catalogapi.Product{ID: id, SKU: "S-" + id, Name: "Product " + id,
		Price: money.New(amount, usd), Version: version})
	if err != nil {
		panic(err)
	}
	m.ID = fmt.Sprintf("%s-v%d", id, version)
	m.Headers = map[string]string{}
	if pos > 0 {
		m.Headers[messaging.HeaderPosition] = strconv.FormatUint(pos, 10)
	}
	return messaging.Delivery{Message: m, Attempt: 1}
}

func open(t *testing.T, db *sql.DB, opts products.Options) *products.Model {
	t.Helper()
	opts.Postgres = strings.HasSuffix(t.Name(), "/postgres")
	opts.Logger = slog.New(slog.DiscardHandler)
	m, err := products.Open(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// noPages is a catalog without products, at position at.
func noPages(at uint64) products.Pages {
	return func(context.Context, catalogapi.ProductsRequest) (catalogapi.ProductsPage, error) {
		return catalogapi.ProductsPage{Items: []catalogapi.Product{}, Position: at}, nil
	}
}

func price(t *testing.T, m *products.Model, id string) (int64, int64) {
	t.Helper()
	p, ok, err := m.Get(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("product %s: %v %v", id, ok, err)
	}
	return p.Price.Amount, p.Version
}

// TestEventsNeverMoveAPriceBackwards: redelivered, repeated and
// out-of-order events leave each product at its newest version, and the
// model's position is the highest catalog position applied, once seeded.
func TestEventsNeverMoveAPriceBackwards(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		m := open(t, db, products.Options{Pages: noPages(0)})
		for _, d := range []messaging.Delivery{
			event("a", 1, 1000, 1), event("a", 2, 1500, 2),
			event("a", 1, 1000, 1), event("a", 2, 1500, 2), // redelivered
			event("b", 1, 700, 3), event("b", 3, 900, 5), event("b", 2, 800, 4), // out of order
		} {
			if err := m.Handle(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if amt, v := price(t, m, "a"); amt != 1500 || v != 2 {
			t.Fatalf("a at %d (v%d), want 1500 (v2)", amt, v)
		}
		if amt, v := price(t, m, "b"); amt != 900 || v != 3 {
			t.Fatalf("b at %d (v%d), want 900 (v3)", amt, v)
		}
		// Before the seed the model cannot vouch for any position: the
		// stream may have lost older products' events to its age limit.
		if pos, err := m.Position(ctx); err != nil || pos != 0 {
			t.Fatalf("position before the seed: %d %v", pos, err)
		}
		if err := m.Seed(ctx); err != nil {
			t.Fatal(err)
		}
		if pos, err := m.Position(ctx); err != nil || pos != 5 {
			t.Fatalf("position %d %v, want 5", pos, err)
		}
		// A replay of the whole stream changes nothing.
		for _, d := range []messaging.Delivery{event("a", 1, 1000, 1), event("a", 2, 1500, 2), event("b", 1, 700, 3)} {
			if err := m.Handle(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		got, err := m.Prices(ctx, []string{"a", "b"})
		if err != nil || got["a"].Amount != 1500 || got["b"].Amount != 900 || got["a"].Currency != usd {
			t.Fatalf("prices %v %v", got, err)
		}
		if pos, _ := m.Position(ctx); pos != 5 {
			t.Fatalf("position %d after a replay, want 5", pos)
		}
		// An event ordering cannot read is a dead letter, not a retry.
		bad := event("c", 1, 100, 6)
		bad.Data = []byte(`{"id":`)
		if err := m.Handle(ctx, bad); !errors.Is(err, messaging.ErrPermanent) {
			t.Fatalf("an unreadable event: %v", err)
		}
	})
}

// TestSeedFillsAnEmptyModel: an empty model is filled from the
// catalog's pages once, as of the first page's position; a product the
// model already holds newer is kept.
func TestSeedFillsAnEmptyModel(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		catalog := []catalogapi.Product{}
		for i := range 7 {
			catalog = append(catalog, catalogapi.Product{ID: fmt.Sprintf("p%d", i), Name: "P", Price: money.New(int64(100*(i+1)), usd), Version: 1})
		}
		calls := 0
		pages := func(_ context.Context, r catalogapi.ProductsRequest) (catalogapi.ProductsPage, error) {
			calls++
			start := 0
			for start < len(catalog) && catalog[start].ID <= r.After {
				start++
			}
			end := min(start+3, len(catalog))
			// The catalog moves on while it is read.
			return catalogapi.ProductsPage{Items: catalog[start:end], Position: uint64(40 + calls), More: end < len(catalog)}, nil
		}
		m := open(t, db, products.Options{Pages: pages})
		if err := m.Handle(ctx, event("p1", 2, 250, 0)); err != nil { // newer than the seed's p1
			t.Fatal(err)
		}
		if err := m.Seed(ctx); err != nil {
			t.Fatal(err)
		}
		if calls != 3 {
			t.Fatalf("%d pages asked, want 3", calls)
		}
		if pos, err := m.Position(ctx); err != nil || pos != 41 {
			t.Fatalf("position %d %v, want 41 (the first page's)", pos, err)
		}
		ids := []string{}
		for _, p := range catalog {
			ids = append(ids, p.ID)
		}
		got, err := m.Prices(ctx, ids)
		if err != nil || len(got) != 7 || got["p6"].Amount != 700 || got["p1"].Amount != 250 {
			t.Fatalf("prices %v %v", got, err)
		}
		// Seeded once: a second model on the same database asks nothing.
		again := open(t, db, products.Options{Pages: func(context.Context, catalogapi.ProductsRequest) (catalogapi.ProductsPage, error) {
			t.Fatal("the catalog was asked again")
			return catalogapi.ProductsPage{}, nil
		}})
		if err := again.Seed(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPricesWaitsForAProductOnItsWay: a product the model does not hold
// is waited for and priced as soon as its event is applied; one that
// never comes is reported missing once the wait ends; before the model
// was filled, missing products are ErrNotReady.
func TestPricesWaitsForAProductOnItsWay(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		// A long wait: the answer must come from the event, not the timer.
		m := open(t, db, products.Options{Pages: noPages(0), MissingWait: time.Hour})
		if err := m.Seed(ctx); err != nil {
			t.Fatal(err)
		}
		type answer struct {
			prices map[string]money.Money
			err    error
		}
		done := make(chan answer, 1)
		go func() {
			p, err := m.Prices(ctx, []string{"new"})
			done <- answer{p, err}
		}()
		if err := m.Handle(ctx, event("new", 1, 4200, 1)); err != nil {
			t.Fatal(err)
		}
		if a := <-done; a.err != nil || a.prices["new"].Amount != 4200 {
			t.Fatalf("prices %v %v", a.prices, a.err)
		}

		short := open(t, db, products.Options{MissingWait: time.Millisecond})
		got, err := short.Prices(ctx, []string{"new", "never"})
		if err != nil || len(got) != 1 || got["new"].Amount != 4200 {
			t.Fatalf("an unknown product: %v %v", got, err)
		}
	})
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		m := open(t, db, products.Options{MissingWait: time.Millisecond}) // no catalog to seed from
		if _, err := m.Prices(context.Background(), []string{"p"}); !errors.Is(err, products.ErrNotReady) {
			t.Fatalf("an unseeded model: %v", err)
		}
	})
}

// TestWaitFor: a wait for a catalog position returns once the model has
// applied it, and not before.
func TestWaitFor(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		m := open(t, db, products.Options{Pages: noPages(2)})
		if err := m.Seed(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.WaitFor(ctx, 2); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- m.WaitFor(ctx, 4) }()
		if err := m.Handle(ctx, event("x", 1, 100, 3)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("returned at position 3: %v", err)
		default:
		}
		if err := m.Handle(ctx, event("x", 2, 200, 4)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		expired, cancel := context.WithCancel(ctx)
		cancel()
		if err := m.WaitFor(expired, 9); !errors.Is(err, context.Canceled) {
			t.Fatalf("a wait past the model: %v", err)
		}
	})
}
