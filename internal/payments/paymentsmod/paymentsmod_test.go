package paymentsmod_test

import (
	"context"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/payments/paymentsmod"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, paymentsmod.Module, store, db, nil)
	ctx := context.Background()
	svc := h.Module.Service.(*app.Service)
	if a, _, err := svc.Get(ctx, "merchant"); err != nil || a.OwnerID != "merchant" {
		t.Fatalf("the merchant account: %+v %v", a, err)
	}
	if len(h.Module.Consumers) != 0 || h.Module.Publish == nil || len(h.Module.Projections) != 1 {
		t.Fatalf("orchestrated payments: %d consumers, %d projections", len(h.Module.Consumers), len(h.Module.Projections))
	}
	open := paymentsapi.OpenAccount.Bind(h.Calls)
	if _, err := open(ctx, paymentsapi.OpenAccountRequest{}); errs.CodeOf(err) != errs.Invalid {
		t.Fatalf("an account for nobody: %v", err)
	}
	id, err := open(ctx, paymentsapi.OpenAccountRequest{Meta: metaOf("acme", "u-1")})
	again, err2 := open(ctx, paymentsapi.OpenAccountRequest{Meta: metaOf("acme", "u-1")})
	if err != nil || err2 != nil || id != "acct-u-1" || again != id {
		t.Fatalf("open twice: %q %v, %q %v", id, err, again, err2)
	}
	o, err := paymentsapi.AccountOwner.Bind(h.Calls)(ctx, paymentsapi.AccountRequest{AccountID: id})
	if err != nil || o.Tenant != "acme" || o.ID != "u-1" {
		t.Fatalf("owner: %+v %v", o, err)
	}

	store2, db2 := testenv.SQLite(t)
	c := moduletest.Start(t, paymentsmod.Module, store2, db2, &moduletest.Options{Settings: func(s *module.Settings) {
		s.CheckoutMode, s.MerchantAccountID = module.Choreography, "shop"
	}})
	if len(c.Module.Consumers) != 1 || c.Module.Consumers[0].Name != "payments-checkout" || c.Module.Consumers[0].Stream != module.EventsStream {
		t.Fatalf("choreographed payments: %+v", c.Module.Consumers)
	}
	if _, _, err := c.Module.Service.(*app.Service).Get(ctx, "shop"); err != nil {
		t.Fatalf("the configured merchant account: %v", err)
	}
}

func metaOf(tenant, user string) eventstore.Metadata {
	return eventstore.Metadata{Tenant: tenant, User: user}
}
