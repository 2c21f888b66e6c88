package catalogmod_test

import (
	"context"
	"testing"

	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
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
