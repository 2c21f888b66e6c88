package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/store"
	"github.com/agora-commerce/agora/internal/testenv"
)

// TestStore is the repository contract, on SQLite and (when
// AGORA_TEST_POSTGRES_URL is set) PostgreSQL, each in a fresh database.
func TestStore(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		pg := strings.HasSuffix(t.Name(), "/postgres")
		s, err := store.Open(ctx, db, pg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Open(ctx, db, pg); err != nil {
			t.Fatalf("migrations are not idempotent: %v", err)
		}

		// The default tenant always exists; tenants are created once.
		if _, err := s.Tenant(ctx, identity.DefaultTenant); err != nil {
			t.Fatalf("default tenant: %v", err)
		}
		if _, err := s.Tenant(ctx, "acme"); !errors.Is(err, identity.ErrTenantNotFound) {
			t.Fatalf("unknown tenant: %v", err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		for i, want := range []bool{true, false} {
			created, err := s.CreateTenant(ctx, identity.Tenant{ID: "acme", Name: "Acme", CreatedAt: now})
			if err != nil || created != want {
				t.Fatalf("CreateTenant #%d = %v, %v", i+1, created, err)
			}
		}
		if tn, err := s.Tenant(ctx, "acme"); err != nil || tn.Name != "Acme" || !tn.CreatedAt.Equal(now) {
			t.Fatalf("tenant = %+v, %v", tn, err)
		}

		u := identity.User{ID: "u1", Tenant: "demo", Email: "ann@example.com", Name: "Ann",
			Roles: []identity.Role{identity.Admin, identity.Customer}, PasswordHash: "$argon2id$x", CreatedAt: now, UpdatedAt: now}
		if err := s.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		for _, get := range []func() (identity.User, error){
			func() (identity.User, error) { return s.User(ctx, "u1") },
			func() (identity.User, error) { return s.UserByEmail(ctx, "demo", "ann@example.com") },
		} {
			got, err := get()
			if err != nil || got.ID != "u1" || got.Email != u.Email || got.Name != "Ann" || len(got.Roles) != 2 ||
				got.Roles[0] != identity.Admin || got.PasswordHash != u.PasswordHash || !got.CreatedAt.Equal(now) {
				t.Fatalf("read back %+v, %v", got, err)
			}
		}

		// Email is unique per tenant, not across tenants.
		dup := u
		dup.ID = "u2"
		if err := s.AddUser(ctx, dup); !errors.Is(err, identity.ErrEmailTaken) {
			t.Fatalf("duplicate email: %v", err)
		}
		if _, err := s.User(ctx, "u2"); !errors.Is(err, identity.ErrUserNotFound) {
			t.Fatalf("the duplicate was stored: %v", err)
		}
		dup.Tenant = "acme"
		if err := s.AddUser(ctx, dup); err != nil {
			t.Fatalf("same email in another tenant: %v", err)
		}
		if _, err := s.UserByEmail(ctx, "acme", "nobody@example.com"); !errors.Is(err, identity.ErrUserNotFound) {
			t.Fatalf("unknown email: %v", err)
		}

		later := now.Add(time.Second)
		got, err := s.UpdateUser(ctx, "u1", func(u *identity.User) error {
			u.AccountID, u.Roles, u.UpdatedAt = "acct-1", []identity.Role{identity.Merchant}, later
			return nil
		})
		if err != nil || got.AccountID != "acct-1" {
			t.Fatalf("update: %+v, %v", got, err)
		}
		if got, _ := s.User(ctx, "u1"); got.AccountID != "acct-1" || len(got.Roles) != 1 || got.Roles[0] != identity.Merchant || !got.UpdatedAt.Equal(later) {
			t.Fatalf("after update: %+v", got)
		}
		boom := errors.New("boom")
		if _, err := s.UpdateUser(ctx, "u1", func(u *identity.User) error { u.Name = "X"; return boom }); !errors.Is(err, boom) {
			t.Fatalf("update error: %v", err)
		}
		if got, _ := s.User(ctx, "u1"); got.Name != "Ann" {
			t.Fatal("a failed update changed the user")
		}
		if _, err := s.UpdateUser(ctx, "nope", func(*identity.User) error { return nil }); !errors.Is(err, identity.ErrUserNotFound) {
			t.Fatalf("update unknown: %v", err)
		}

		if err := s.DeleteUser(ctx, "u1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteUser(ctx, "u1"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := s.User(ctx, "u1"); !errors.Is(err, identity.ErrUserNotFound) {
			t.Fatalf("deleted user: %v", err)
		}
	})
}

// TestRefreshTokens: a refresh token is used once; a second use, a
// revoked family and an expired token are told apart for the audit log.
func TestRefreshTokens(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, _ eventstore.Store, db *sql.DB) {
		ctx := context.Background()
		s, err := store.Open(ctx, db, strings.HasSuffix(t.Name(), "/postgres"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		add := func(hash, family string, ttl time.Duration) {
			t.Helper()
			if err := s.AddRefresh(ctx, identity.RefreshToken{Hash: hash, Family: family, UserID: "u1", Tenant: "demo",
				CreatedAt: now, ExpiresAt: now.Add(ttl)}); err != nil {
				t.Fatal(err)
			}
		}
		add("a", "f1", time.Hour)
		add("b", "f1", time.Hour)
		add("old", "f2", time.Millisecond)
		if rt, err := s.UseRefresh(ctx, "a", now); err != nil || rt.Family != "f1" || rt.UserID != "u1" || rt.UsedAt.IsZero() {
			t.Fatalf("first use: %+v %v", rt, err)
		}
		if rt, err := s.UseRefresh(ctx, "a", now); !errors.Is(err, identity.ErrRefreshReused) || rt.Family != "f1" {
			t.Fatalf("second use: %+v %v", rt, err)
		}
		if n, err := s.RevokeFamily(ctx, "f1", now); err != nil || n != 2 {
			t.Fatalf("revoke: %d %v", n, err)
		}
		if _, err := s.UseRefresh(ctx, "b", now); !errors.Is(err, identity.ErrRefreshRevoked) {
			t.Fatalf("a revoked family's token: %v", err)
		}
		if _, err := s.UseRefresh(ctx, "old", now.Add(time.Second)); !errors.Is(err, identity.ErrRefreshUnknown) {
			t.Fatalf("an expired token: %v", err)
		}
		if _, err := s.UseRefresh(ctx, "none", now); !errors.Is(err, identity.ErrRefreshUnknown) {
			t.Fatalf("an unknown token: %v", err)
		}
	})
}
