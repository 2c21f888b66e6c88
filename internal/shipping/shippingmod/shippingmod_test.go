package shippingmod_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/shipping"
	"github.com/agora-commerce/agora/internal/shipping/carrier"
	"github.com/agora-commerce/agora/internal/shipping/shippingapi"
	"github.com/agora-commerce/agora/internal/shipping/shippingmod"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	// The platform's carrier is the one shipping books with.
	h := moduletest.Start(t, shippingmod.Module, store, db, &moduletest.Options{Settings: func(s *module.Settings) { s.Carrier = carrier.NewSim(1, 0) }})
	arrange := shippingapi.Arrange.Bind(h.Calls)
	to := &shippingapi.Address{Street: "1 Main", City: "X", ZipCode: "62701", Country: "US"}
	if _, err := arrange(context.Background(), shippingapi.ShipmentRequest{OrderID: "o1", Address: to}); !errors.Is(err, shipping.ErrShippingFailed) {
		t.Fatalf("a carrier that refuses everything: %v", err)
	}
	if _, err := arrange(context.Background(), shippingapi.ShipmentRequest{OrderID: "o2"}); err == nil {
		t.Fatal("arranged a shipment without an address")
	}
	store2, db2 := testenv.SQLite(t)
	c := moduletest.Start(t, shippingmod.Module, store2, db2, &moduletest.Options{Settings: func(s *module.Settings) {
		s.Carrier, s.CheckoutMode = nil, module.Choreography
	}})
	if _, err := shippingapi.Arrange.Bind(c.Calls)(context.Background(), shippingapi.ShipmentRequest{OrderID: "o1", Address: to}); err != nil {
		t.Fatalf("no carrier given: a perfect one: %v", err)
	}
	if len(c.Module.Consumers) != 1 || c.Module.Consumers[0].Name != "shipping-checkout" {
		t.Fatalf("choreographed shipping: %+v", c.Module.Consumers)
	}
}
