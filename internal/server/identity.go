package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/identity"
	idapi "github.com/agora-commerce/agora/internal/identity/api"
	idapp "github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/identity/audit"
	idstore "github.com/agora-commerce/agora/internal/identity/store"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/money"
)

// Demo is what the demo seed created or found: who can log in, and how.
type Demo struct {
	// Tenant is the demo tenant.
	Tenant string
	// MerchantEmail/MerchantPassword and CustomerEmail/CustomerPassword
	// log in as the demo merchant and customer (public demo passwords).
	MerchantEmail, MerchantPassword string
	CustomerEmail, CustomerPassword string
	// CustomerAccountID is the demo customer's funded payments account.
	CustomerAccountID string
	// Created reports whether this start created the demo data.
	Created bool
}

// Demo returns the demo users if the server seeded them (Config.SeedDemo).
func (s *Server) Demo() (Demo, bool) {
	if s.seeded == nil {
		return Demo{}, false
	}
	return *s.seeded, true
}

// wireIdentity builds the identity context: the signing key (created in
// the data directory on first start), users and tenants in the
// read-model database, audit events in the event store, and the
// customer's payments account opened on registration.
func (s *Server) wireIdentity(ctx context.Context, mux *http.ServeMux, accounts identity.Accounts) error {
	key, err := auth.LoadOrCreateKey(s.cfg.DataDir)
	if err != nil {
		return err
	}
	signer := auth.NewSigner(key, auth.Options{})
	s.Verifier = auth.NewVerifier(signer.Keys(), auth.Options{})
	if s.cfg.JWKSURL != "" && s.cfg.Only != "" && s.cfg.Only != clusterIdentity {
		// This process issues no tokens: it checks them with identity's
		// published keys.
		if s.Verifier, err = auth.NewRemoteVerifier(s.bg, s.cfg.JWKSURL, auth.Options{}); err != nil {
			return fmt.Errorf("server: keys from %s: %w", s.cfg.JWKSURL, err)
		}
	}
	repo, err := idstore.Open(ctx, s.rmDB, s.cfg.PostgresURL != "")
	if err != nil {
		return err
	}
	s.Identity, err = idapp.New(idapp.Config{Repo: repo, Signer: signer, Audit: audit.New(s.store),
		Accounts: accounts, Logger: s.log})
	if err != nil {
		return err
	}
	if s.cfg.BootstrapAdmin != "" && s.owns(clusterIdentity) {
		u, created, err := s.Identity.EnsureBootstrapAdmin(ctx, s.cfg.BootstrapAdmin)
		if err != nil {
			return fmt.Errorf("bootstrap admin: %w", err)
		}
		if created {
			s.log.Info("bootstrap admin created", "user", u.ID, "email", u.Email)
		}
	}
	if s.cfg.SeedDemo && s.cfg.Only == "" {
		if err := s.seedDemo(ctx); err != nil {
			return fmt.Errorf("demo seed: %w", err)
		}
	}
	idapi.New(s.Identity, signer, s.Verifier, idapi.Options{}).Register(mux)
	return nil
}

// demoFunds is what the demo customer's account starts with: $1,000.00.
const demoFunds = 100_000

// demoProducts is the demo catalog: SKU, name, price in cents, stock.
var demoProducts = []struct {
	sku, name string
	cents     int64
	stock     int64
}{
	{"MUG-1", "Agora mug", 1250, 100},
	{"TEE-1", "Agora t-shirt", 2400, 50},
	{"CAP-1", "Agora cap", 1800, 40},
	{"BOOK-DDD", "Domain-Driven Design, used", 4500, 5},
	{"STICKER-1", "Sticker pack", 300, 1000},
}

// seedDemo creates the demo tenant's users, funds the customer the first
// time, and stocks the demo catalog (products that exist are left alone).
func (s *Server) seedDemo(ctx context.Context) error {
	d, err := s.Identity.SeedDemo(ctx)
	if err != nil {
		return err
	}
	meta := eventstore.Metadata{Tenant: d.Tenant, User: "demo-seed"}
	if d.Customer.Created {
		if _, err := s.Payments.Deposit(ctx, meta, d.Customer.AccountID, money.New(demoFunds, money.MustCurrency("USD"))); err != nil {
			return err
		}
	}
	for _, p := range demoProducts {
		created, err := s.Catalog.Create(ctx, meta, catalog.Product{SKU: p.sku, Name: p.name, Price: money.New(p.cents, money.MustCurrency("USD"))})
		if errors.Is(err, catalog.ErrSKUTaken) {
			continue
		}
		if err != nil {
			return err
		}
		if _, _, err := s.Inventory.Restock(ctx, meta, created.ID, p.stock); err != nil {
			return err
		}
	}
	s.seeded = &Demo{Tenant: d.Tenant, MerchantEmail: d.Merchant.Email, MerchantPassword: d.Merchant.Password,
		CustomerEmail: d.Customer.Email, CustomerPassword: d.Customer.Password, CustomerAccountID: d.Customer.AccountID,
		Created: d.Created()}
	return nil
}
