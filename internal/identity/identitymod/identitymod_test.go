package identitymod_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/identitymod"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/testenv"
)

func TestModule(t *testing.T) {
	store, db := testenv.SQLite(t)
	var mu sync.Mutex
	var opened []paymentsapi.OpenAccountRequest
	fake := paymentsapi.OpenAccount.Answer(func(_ context.Context, r paymentsapi.OpenAccountRequest) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, r)
		return "acct-" + r.Meta.User, nil
	})
	h := moduletest.Start(t, identitymod.Module, store, db, &moduletest.Options{Fakes: []call.Answer{fake},
		Settings: func(s *module.Settings) { s.BootstrapAdmin = "boot@agora.test:boot-password-1" }})
	// The bootstrap admin logs in.
	if r := h.As("").Do("POST", "/api/v1/auth/token", `{"email":"boot@agora.test","password":"boot-password-1"}`); r.Status != 200 {
		t.Fatalf("bootstrap admin: %d %s", r.Status, r.Raw)
	}
	// A registration opens the customer's account in payments, as that
	// customer of that tenant.
	r := h.As("").Do("POST", "/api/v1/customers", `{"email":"ann@agora.test","password":"password-123","name":"Ann"}`)
	if r.Status != 201 || len(opened) != 1 || opened[0].Meta.User != r.Body["id"] || opened[0].Meta.Tenant != "demo" ||
		r.Body["account_id"] != "acct-"+r.Body["id"].(string) {
		t.Fatalf("register: %d %s, opened %+v", r.Status, r.Raw, opened)
	}
	d, err := h.Module.SeedDemo(context.Background())
	if err != nil || !d.Created || d.CustomerAccountID == "" || d.MerchantEmail == "" {
		t.Fatalf("seed: %+v %v", d, err)
	}
	if d, err := h.Module.SeedDemo(context.Background()); err != nil || d.Created {
		t.Fatalf("seed again: %+v %v", d, err)
	}
}

// TestDemoTokens: the seed's tokens are the demo users', checked by the
// platform's verifier, and no login is recorded for them.
func TestDemoTokens(t *testing.T) {
	store, db := testenv.SQLite(t)
	fake := paymentsapi.OpenAccount.Answer(func(_ context.Context, r paymentsapi.OpenAccountRequest) (string, error) {
		return "acct-" + r.Meta.User, nil
	})
	h := moduletest.Start(t, identitymod.Module, store, db, &moduletest.Options{Fakes: []call.Answer{fake}})
	d, err := h.Module.SeedDemo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for tok, role := range map[string]string{d.CustomerToken: "customer", d.MerchantToken: "merchant"} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		c, err := h.Platform.Verifier.Authenticate(req)
		if err != nil || !c.HasRole(role) || c.Tenant != d.Tenant {
			t.Fatalf("%s token: %+v %v", role, c, err)
		}
	}
	recs, err := store.ReadAll(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Type == identity.AuditLoginSucceeded {
			t.Fatalf("the seed logged in: %+v", r)
		}
	}
}
