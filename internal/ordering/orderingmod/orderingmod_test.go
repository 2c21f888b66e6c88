package orderingmod_test

import (
	"context"
	"testing"

	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
	"github.com/agora-commerce/agora/internal/ordering/orderingmod"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, orderingmod.Module, store, db, nil)
	// Orchestrated: the orders read model and the checkout's starter, no
	// consumer, no watchdog.
	if len(h.Module.Projections) != 2 || len(h.Module.Consumers) != 0 || len(h.Module.Daemons) != 0 || h.Module.Publish == nil {
		t.Fatalf("orchestrated ordering: %d projections, %d consumers, %d daemons", len(h.Module.Projections), len(h.Module.Consumers), len(h.Module.Daemons))
	}
	_, err := orderingapi.OrderOwner.Bind(h.Calls)(context.Background(), orderingapi.OrderRequest{OrderID: "nope"})
	if err == nil || err.Error() != ordering.ErrNotFound.Error() {
		t.Fatalf("the owner of no order: %v", err)
	}

	store2, db2 := testenv.SQLite(t)
	c := moduletest.Start(t, orderingmod.Module, store2, db2, &moduletest.Options{Settings: func(s *module.Settings) { s.CheckoutMode = module.Choreography }})
	if len(c.Module.Projections) != 1 || len(c.Module.Consumers) != 1 || c.Module.Consumers[0].Name != "ordering-checkout" || len(c.Module.Daemons) != 1 {
		t.Fatalf("choreographed ordering: %d projections, consumers %+v, %d daemons", len(c.Module.Projections), c.Module.Consumers, len(c.Module.Daemons))
	}
}
