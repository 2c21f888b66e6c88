package catalogmod_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, catalogmod.Module, store, db, nil)
	m := h.Module
	if len(m.Consumers) != 1 || !m.Consumers[0].Ephemeral || m.Consumers[0].Stream != module.CatalogStream || len(m.Outboxes) != 1 ||
		m.Outboxes[0].Name != "catalog" || m.Publish != nil {
		t.Fatalf("catalog: consumers %+v, outboxes %+v", m.Consumers, m.Outboxes)
	}
	r := h.As("merchant").Do("POST", "/api/v1/products", `{"sku":"M-1","name":"N","price":{"amount":250,"currency":"USD"}}`)
	id, _ := r.Body["id"].(string)
	ctx := context.Background()
	if ok, err := catalogapi.ProductExists.Bind(h.Calls)(ctx, catalogapi.ProductRequest{ProductID: id}); err != nil || !ok {
		t.Fatalf("a product that exists: %v %v (%s)", ok, err, r.Raw)
	}
	if ok, err := catalogapi.ProductExists.Bind(h.Calls)(ctx, catalogapi.ProductRequest{ProductID: "nope"}); err != nil || ok {
		t.Fatalf("a product that does not: %v %v", ok, err)
	}
	prices, err := catalogapi.Prices.Bind(h.Calls)(ctx, catalogapi.PricesRequest{ProductIDs: []string{id, "nope"}})
	if err != nil || len(prices) != 1 || prices[id].Amount != 250 {
		t.Fatalf("prices: %v %v", prices, err)
	}
}

// TestProductsPages: every write answers its catalog position
// ("catalog.<n>", growing), and query.catalog.products pages through
// every product, each as of at least the position the page names.
func TestProductsPages(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		m := h.As("merchant")
		var last uint64
		var ids []string
		for i := range 5 {
			r := m.Do("POST", "/api/v1/products", fmt.Sprintf(`{"sku":"P-%d","name":"N","price":{"amount":%d,"currency":"USD"}}`, i, 100+i))
			if r.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.Status, r.Raw)
			}
			pos := catalogPosition(t, r)
			if pos <= last {
				t.Fatalf("position %d after %d", pos, last)
			}
			last = pos
			ids = append(ids, r.Body["id"].(string))
		}
		r := m.Do("PUT", "/api/v1/products/"+ids[0], `{"price":{"amount":999,"currency":"USD"}}`)
		if r.Status != http.StatusOK {
			t.Fatalf("update: %d %s", r.Status, r.Raw)
		}
		if pos := catalogPosition(t, r); pos != last+1 {
			t.Fatalf("update at %d, want %d", pos, last+1)
		}
		last++

		products := catalogapi.Products.Bind(h.Calls)
		var got []catalogapi.Product
		after := ""
		for {
			page, err := products(context.Background(), catalogapi.ProductsRequest{After: after, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if page.Position != last || len(page.Items) > 2 {
				t.Fatalf("page at %d with %d items, want position %d and at most 2", page.Position, len(page.Items), last)
			}
			got = append(got, page.Items...)
			if !page.More {
				break
			}
			after = page.Items[len(page.Items)-1].ID
		}
		if len(got) != 5 {
			t.Fatalf("%d products, want 5", len(got))
		}
		for _, p := range got {
			if p.ID == ids[0] && (p.Price.Amount != 999 || p.Version != 2) {
				t.Fatalf("updated product: %+v", p)
			}
		}
	})
}

// catalogPosition reads a catalog write's Agora-Position, which must be
// a position n > 0 (a bare "<n>": the harness names no log; the server
// answers "catalog.<n>").
func catalogPosition(t *testing.T, r moduletest.Response) uint64 {
	t.Helper()
	tok := r.Header.Get(httpapi.PositionHeader)
	log, pos, ok := httpapi.ParsePosition(tok)
	if !ok || log != "" || pos == 0 {
		t.Fatalf("Agora-Position %q, want a position", tok)
	}
	return pos
}
