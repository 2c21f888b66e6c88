package inventorymod_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agora-commerce/agora/internal/inventory"
	"github.com/agora-commerce/agora/internal/inventory/inventoryapi"
	"github.com/agora-commerce/agora/internal/inventory/inventorymod"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, inventorymod.Module, store, db, nil)
	if len(h.Module.Internal) != 1 || h.Module.Internal[0].Pattern != "GET "+inventoryapi.LevelsPath || len(h.Module.Consumers) != 0 {
		t.Fatalf("inventory: internal %v, consumers %d", h.Module.Internal, len(h.Module.Consumers))
	}
	_, err := inventoryapi.Reserve.Bind(h.Calls)(context.Background(), inventoryapi.StockRequest{OrderID: "o1",
		Lines: []inventoryapi.Line{{ProductID: "p-none", Quantity: 1}}})
	if !errors.Is(err, inventory.ErrOutOfStock) {
		t.Fatalf("reserving stock nobody has: %v", err)
	}
	store2, db2 := testenv.SQLite(t)
	c := moduletest.Start(t, inventorymod.Module, store2, db2, &moduletest.Options{Settings: func(s *module.Settings) { s.CheckoutMode = module.Choreography }})
	if len(c.Module.Consumers) != 1 || c.Module.Consumers[0].Name != "inventory-checkout" {
		t.Fatalf("choreographed inventory: %+v", c.Module.Consumers)
	}
}
