package orderingmod_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/ordering/orderingmod"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, orderingmod.Module, store, db, nil)
	// Orchestrated: the orders read model and the checkout's starter; the
	// price model's consumer of the catalog's events and its seed daemon;
	// no watchdog.
	m := h.Module
	if len(m.Projections) != 2 || len(m.Consumers) != 1 || m.Consumers[0].Name != "ordering-prices" || len(m.Daemons) != 1 || m.Publish == nil {
		t.Fatalf("orchestrated ordering: %d projections, consumers %+v, %d daemons", len(m.Projections), m.Consumers, len(m.Daemons))
	}
	if c := m.Consumers[0]; c.Stream != module.CatalogStream || c.InFlight != 1 || c.Concurrency != 1 || c.Ephemeral {
		t.Fatalf("the price model's consumer: %+v", c.Consumer)
	}
	_, err := orderingapi.OrderOwner.Bind(h.Calls)(context.Background(), orderingapi.OrderRequest{OrderID: "nope"})
	if err == nil || err.Error() != ordering.ErrNotFound.Error() {
		t.Fatalf("the owner of no order: %v", err)
	}

	store2, db2 := testenv.SQLite(t)
	c := moduletest.Start(t, orderingmod.Module, store2, db2, &moduletest.Options{Settings: func(s *module.Settings) { s.CheckoutMode = module.Choreography }})
	if len(c.Module.Projections) != 1 || len(c.Module.Consumers) != 2 || c.Module.Consumers[1].Name != "ordering-checkout" || len(c.Module.Daemons) != 2 {
		t.Fatalf("choreographed ordering: %d projections, consumers %+v, %d daemons", len(c.Module.Projections), c.Module.Consumers, len(c.Module.Daemons))
	}
}

// catalogEvent is the catalog's ProductUpdated of p1 at version, priced
// amount, relayed at catalog position pos.
func catalogEvent(version, amount int64, pos uint64) messaging.Delivery {
	m, err := messaging.NewMessage(catalogapi.SubjectProductUpdated, catalogapi.TypeProductUpdated,
		catalogapi.Product{ID: "p1", SKU: "P-1", Name: "Widget", Price: money.New(amount, money.MustCurrency("USD")), Version: version})
	if err != nil {
		panic(err)
	}
	m.ID = fmt.Sprintf("p1-v%d", version)
	m.Headers = map[string]string{messaging.HeaderPosition: strconv.FormatUint(pos, 10)}
	return messaging.Delivery{Message: m, Attempt: 1}
}

// TestOrderingPricesWithoutTheCatalog: ordering built alone (as
// --only ordering builds it) prices orders from its own model. It asks
// the catalog once, to fill the empty model, and never for a price; a
// price change reaches it as the catalog's event, and an order that
// names the change's position (Agora-Min-Position: catalog.<n>) gets
// the new price; a redelivered older event changes nothing.
func TestOrderingPricesWithoutTheCatalog(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		var pages, prices atomic.Int64
		fakes := []call.Answer{
			catalogapi.Products.Answer(func(context.Context, catalogapi.ProductsRequest) (catalogapi.ProductsPage, error) {
				pages.Add(1)
				return catalogapi.ProductsPage{Position: 5, Items: []catalogapi.Product{
					{ID: "p1", Name: "Widget", Price: money.New(1000, money.MustCurrency("USD")), Version: 1}}}, nil
			}),
			catalogapi.Prices.Answer(func(context.Context, catalogapi.PricesRequest) (map[string]money.Money, error) {
				prices.Add(1)
				return nil, fmt.Errorf("the catalog is down")
			}),
			paymentsapi.AccountOwner.Answer(func(context.Context, paymentsapi.AccountRequest) (call.Owner, error) {
				return call.Owner{Tenant: "demo", ID: "c1"}, nil
			}),
		}
		h := moduletest.Start(t, orderingmod.Module, store, db, &moduletest.Options{Fakes: fakes,
			Settings: func(s *module.Settings) { s.CheckoutMode = module.Choreography }}) // no saga: the order stays Pending
		c := h.AsUser("demo", "c1", "customer")
		const body = `{"items":[{"product_id":"p1","quantity":2}],"payment_account_id":"acct-c1",
			"shipping_address":{"street":"1 Main St","city":"Springfield","state":"IL","zip_code":"62701","country":"US"}}`
		total := func(r moduletest.Response) float64 {
			t.Helper()
			if r.Status != http.StatusAccepted {
				t.Fatalf("place: %d %s", r.Status, r.Raw)
			}
			return r.Body["total"].(map[string]any)["amount"].(float64)
		}
		if got := total(c.Do("POST", "/api/v1/orders", body)); got != 2000 {
			t.Fatalf("total %v, want 2000 (the seeded price)", got)
		}
		handle := h.Module.Consumers[0].Handle
		ctx := context.Background()
		if err := handle(ctx, catalogEvent(2, 1500, 6)); err != nil {
			t.Fatal(err)
		}
		if got := total(c.Do("POST", "/api/v1/orders", body, httpapi.MinPositionHeader, "catalog.6")); got != 3000 {
			t.Fatalf("total %v, want 3000 (the price as of catalog.6)", got)
		}
		// An order that names a change still on its way waits for it.
		placed := make(chan moduletest.Response, 1)
		go func() { placed <- c.Do("POST", "/api/v1/orders", body, httpapi.MinPositionHeader, "catalog.7") }()
		if err := handle(ctx, catalogEvent(3, 2000, 7)); err != nil {
			t.Fatal(err)
		}
		if got := total(<-placed); got != 4000 {
			t.Fatalf("total %v, want 4000 (the price as of catalog.7)", got)
		}
		// Old news, redelivered: nothing moves back.
		for _, d := range []messaging.Delivery{catalogEvent(2, 1500, 6), catalogEvent(1, 1000, 1)} {
			if err := handle(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if got := total(c.Do("POST", "/api/v1/orders", body)); got != 4000 {
			t.Fatalf("total %v after old events, want 4000", got)
		}
		// Another log's token, or ordering's own, asks nothing of prices.
		if got := total(c.Do("POST", "/api/v1/orders", body, httpapi.MinPositionHeader, "inventory.99")); got != 4000 {
			t.Fatalf("total %v, want 4000", got)
		}
		if r := c.Do("POST", "/api/v1/orders", body, httpapi.MinPositionHeader, "catalog.x"); r.Status != http.StatusBadRequest {
			t.Fatalf("a malformed token: %d %s", r.Status, r.Raw)
		}
		if n, m := pages.Load(), prices.Load(); n != 1 || m != 0 {
			t.Fatalf("ordering asked the catalog for %d pages and %d times for prices; want 1 page (the seed) and no prices", n, m)
		}
	})
}
