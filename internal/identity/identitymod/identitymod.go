// Package identitymod is the identity context as a module: tenants and
// users, the tokens it signs (with the key in the data directory), the
// audit log, and a new customer's payments account, asked of payments.
package identitymod

import (
	"context"
	"fmt"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/api"
	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/identity/store"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/internal/platform/auth"
)

// Module declares the identity module (its audit events stay in its log).
var Module = module.Def{Name: "identity", New: New}

// New builds the identity module, creating the bootstrap admin if the
// settings name one.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	key, err := auth.LoadOrCreateKey(p.Settings.DataDir)
	if err != nil {
		return nil, err
	}
	signer := auth.NewSigner(key, auth.Options{})
	repo, err := store.Open(ctx, p.DB, p.Settings.Postgres)
	if err != nil {
		return nil, err
	}
	cfg := app.Config{Repo: repo, Signer: signer, Audit: audit.New(p.Store),
		Accounts: accounts(paymentsapi.OpenAccount.Bind(p.Calls)), Logger: p.Logger, Refresh: repo}
	if p.Revocations != nil {
		cfg.Revoker = p.Revocations
	}
	svc, err := app.New(cfg)
	if err != nil {
		return nil, err
	}
	if p.Settings.BootstrapAdmin != "" {
		u, created, err := svc.EnsureBootstrapAdmin(ctx, p.Settings.BootstrapAdmin)
		if err != nil {
			return nil, fmt.Errorf("bootstrap admin: %w", err)
		}
		if created {
			p.Logger.Info("bootstrap admin created", "user", u.ID, "email", u.Email)
		}
	}
	return &module.Module{
		Routes:  api.New(svc, signer, p.Verifier, api.Options{}).Register,
		Service: svc,
		SeedDemo: func(ctx context.Context) (module.Demo, error) {
			d, err := svc.SeedDemo(ctx)
			if err != nil {
				return module.Demo{}, err
			}
			token := func(u app.SeededUser) (string, error) {
				c := auth.Claims{Tenant: d.Tenant, Roles: identity.RoleNames(u.Roles), Email: u.Email}
				c.Subject = u.ID
				return signer.Issue(c, time.Minute)
			}
			out := module.Demo{Tenant: d.Tenant, MerchantEmail: d.Merchant.Email, MerchantPassword: d.Merchant.Password,
				CustomerEmail: d.Customer.Email, CustomerPassword: d.Customer.Password, CustomerAccountID: d.Customer.AccountID,
				AdminEmail: d.Admin.Email, AdminPassword: d.Admin.Password,
				Created: d.Customer.Created}
			if out.CustomerToken, err = token(d.Customer); err != nil {
				return module.Demo{}, err
			}
			if out.MerchantToken, err = token(d.Merchant); err != nil {
				return module.Demo{}, err
			}
			return out, nil
		},
	}, nil
}

// accounts opens a customer's payments account, asking payments: one USD
// account per user, its ID derived from the user's, so a registration
// retried opens nothing new. It records the registration request's
// tenant, user and trace context.
type accounts func(ctx context.Context, r paymentsapi.OpenAccountRequest) (string, error)

var _ identity.Accounts = accounts(nil)

func (f accounts) OpenFor(ctx context.Context, tenant, userID string) (string, error) {
	o := identity.OriginFrom(ctx)
	return f(ctx, paymentsapi.OpenAccountRequest{Meta: eventstore.Metadata{Tenant: tenant, User: userID,
		CorrelationID: o.RequestID, TraceParent: o.TraceParent}})
}
