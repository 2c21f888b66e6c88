package app

import (
	"context"
	"errors"
	"strings"

	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

// The demo tenant's users and their (public, demo-only) passwords.
const (
	// DemoTenant is the tenant SeedDemo fills.
	DemoTenant = identity.DefaultTenant
	// DemoMerchantEmail logs in as the demo merchant.
	DemoMerchantEmail = "merchant@demo.agora"
	// DemoMerchantPassword is the demo merchant's password.
	DemoMerchantPassword = "merchant-demo"
	// DemoCustomerEmail logs in as the demo customer.
	DemoCustomerEmail = "customer@demo.agora"
	// DemoCustomerPassword is the demo customer's password.
	DemoCustomerPassword = "customer-demo"
	// DemoAdminEmail logs in as the demo tenant's admin (the console).
	DemoAdminEmail = "admin@demo.agora"
	// DemoAdminPassword is the demo admin's password.
	DemoAdminPassword = "admin-demo"
)

// SeededUser is one demo user.
type SeededUser struct {
	// ID is the user's ID.
	ID string
	// Email and Password log the user in.
	Email, Password string
	// Roles are the user's roles.
	Roles []identity.Role
	// AccountID is the user's payments account (customers), if any.
	AccountID string
	// Created is true if this call created the user, false if it existed.
	Created bool
}

// Seeded is what SeedDemo found or created.
type Seeded struct {
	// Tenant is the demo tenant's ID.
	Tenant string
	// Merchant, Customer and Admin are the demo users.
	Merchant, Customer, Admin SeededUser
}

// Created reports whether the call created anything.
func (d Seeded) Created() bool { return d.Merchant.Created || d.Customer.Created || d.Admin.Created }

// SeedDemo makes sure the demo tenant has a merchant (DemoMerchantEmail),
// a customer (DemoCustomerEmail, with a payments account) and an admin
// (DemoAdminEmail) and returns them. It is idempotent: users that exist are returned as they are,
// with Created false.
func (s *Service) SeedDemo(ctx context.Context) (Seeded, error) {
	if _, err := s.repo.CreateTenant(ctx, identity.Tenant{ID: DemoTenant, Name: "Demo", CreatedAt: s.now().UTC()}); err != nil {
		return Seeded{}, err
	}
	out := Seeded{Tenant: DemoTenant}
	var err error
	if out.Merchant, err = s.seed(ctx, DemoMerchantEmail, DemoMerchantPassword, "Demo Merchant", identity.Merchant); err != nil {
		return Seeded{}, err
	}
	if out.Customer, err = s.seed(ctx, DemoCustomerEmail, DemoCustomerPassword, "Demo Customer", identity.Customer); err != nil {
		return Seeded{}, err
	}
	if out.Admin, err = s.seed(ctx, DemoAdminEmail, DemoAdminPassword, "Demo Admin", identity.Admin); err != nil {
		return Seeded{}, err
	}
	return out, nil
}

func (s *Service) seed(ctx context.Context, email, password, name string, role identity.Role) (SeededUser, error) {
	su := SeededUser{Email: email, Password: password, Roles: []identity.Role{role}}
	u, err := s.repo.UserByEmail(ctx, DemoTenant, email)
	if errors.Is(err, identity.ErrUserNotFound) {
		u, err = s.create(ctx, identity.NewUser{Tenant: DemoTenant, Email: email, Password: password, Name: name, Roles: su.Roles})
		if err == nil {
			su.Created = true
			s.record(ctx, DemoTenant, identity.AuditEvent{Type: identity.AuditUserCreated, Who: "system", What: "demo seed",
				Subject: u.ID, Roles: identity.RoleNames(u.Roles)})
		} else if errors.Is(err, identity.ErrEmailTaken) { // a concurrent seed won
			u, err = s.repo.UserByEmail(ctx, DemoTenant, email)
		}
	}
	if err != nil {
		return SeededUser{}, err
	}
	su.ID, su.AccountID, su.Roles = u.ID, u.AccountID, u.Roles
	return su, nil
}

// ErrBootstrapConflict refuses to make an existing non-admin user the
// bootstrap admin: whoever registered the address first chose its password.
var ErrBootstrapConflict = errs.Rule("bootstrap_conflict", "the bootstrap admin's email belongs to a user who is not an admin")

// EnsureBootstrapAdmin makes sure an admin with the email of spec
// ("email:password", the AGORA_BOOTSTRAP_ADMIN format) exists in
// identity.DefaultTenant, creating it if not. It is idempotent: an
// existing admin is returned unchanged (created false, password not
// reset). An existing user without the admin role is refused with
// ErrBootstrapConflict rather than promoted.
func (s *Service) EnsureBootstrapAdmin(ctx context.Context, spec string) (u identity.User, created bool, err error) {
	email, password, ok := strings.Cut(spec, ":")
	if !ok {
		return identity.User{}, false, errs.E(errs.Invalid, `bootstrap admin must be "email:password"`)
	}
	norm, fe := identity.NormalizeEmail(email)
	if fe != nil {
		return identity.User{}, false, errs.Fields(*fe)
	}
	u, err = s.repo.UserByEmail(ctx, identity.DefaultTenant, norm)
	if errors.Is(err, identity.ErrUserNotFound) {
		u, err = s.create(ctx, identity.NewUser{Tenant: identity.DefaultTenant, Email: norm, Password: password,
			Name: "Administrator", Roles: []identity.Role{identity.Admin}})
		if err == nil {
			s.record(ctx, u.Tenant, identity.AuditEvent{Type: identity.AuditAdminBootstrapped, Who: "bootstrap",
				What: "bootstrap admin created", Subject: u.ID, Roles: identity.RoleNames(u.Roles)})
			return u, true, nil
		}
		if errors.Is(err, identity.ErrEmailTaken) { // a concurrent bootstrap won
			u, err = s.repo.UserByEmail(ctx, identity.DefaultTenant, norm)
		}
	}
	if err != nil {
		return identity.User{}, false, err
	}
	if !u.HasRole(identity.Admin) {
		return identity.User{}, false, ErrBootstrapConflict
	}
	return u, false, nil
}
