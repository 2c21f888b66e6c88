// Package store is the identity context's SQL adapter: an
// identity.Repository on a *sql.DB that is SQLite or PostgreSQL (tables
// identity_tenants and identity_users, created by embedded migrations).
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/sqlmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is an identity.Repository in SQL.
type Store struct {
	db       *sql.DB
	postgres bool
}

var _ identity.Repository = (*Store)(nil)

// Open applies the identity migrations to db and returns a Store on it.
// postgres selects PostgreSQL locking; otherwise db is SQLite.
func Open(ctx context.Context, db *sql.DB, postgres bool) (*Store, error) {
	lock := ""
	if postgres {
		lock = "SELECT pg_advisory_xact_lock(7262053)"
	}
	if err := sqlmigrate.Apply(ctx, db, migrations, "migrations", "identity_migrations", lock); err != nil {
		return nil, fmt.Errorf("identity store: %w", err)
	}
	return &Store{db: db, postgres: postgres}, nil
}

// CreateTenant implements identity.Repository.
func (s *Store) CreateTenant(ctx context.Context, t identity.Tenant) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO identity_tenants (id, name, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO NOTHING`, t.ID, t.Name, t.CreatedAt.UnixNano())
	if err != nil {
		return false, fmt.Errorf("identity store: create tenant: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("identity store: create tenant: %w", err)
	}
	return n == 1, nil
}

// Tenant implements identity.Repository.
func (s *Store) Tenant(ctx context.Context, id string) (identity.Tenant, error) {
	t := identity.Tenant{ID: id}
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT name, created_at FROM identity_tenants WHERE id = $1`, id).Scan(&t.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return identity.Tenant{}, identity.ErrTenantNotFound
	}
	if err != nil {
		return identity.Tenant{}, fmt.Errorf("identity store: tenant: %w", err)
	}
	t.CreatedAt = time.Unix(0, created).UTC()
	return t, nil
}

const cols = `id, tenant, email, name, roles, password_hash, account_id, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (identity.User, error) {
	var u identity.User
	var roles string
	var created, updated int64
	if err := row.Scan(&u.ID, &u.Tenant, &u.Email, &u.Name, &roles, &u.PasswordHash, &u.AccountID, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return identity.User{}, identity.ErrUserNotFound
		}
		return identity.User{}, fmt.Errorf("identity store: read user: %w", err)
	}
	for r := range strings.SplitSeq(roles, ",") {
		if r != "" {
			u.Roles = append(u.Roles, identity.Role(r))
		}
	}
	u.CreatedAt, u.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return u, nil
}

func roles(u identity.User) string { return strings.Join(identity.RoleNames(u.Roles), ",") }

// AddUser implements identity.Repository.
func (s *Store) AddUser(ctx context.Context, u identity.User) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO identity_users (`+cols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		u.ID, u.Tenant, u.Email, u.Name, roles(u), u.PasswordHash, u.AccountID, u.CreatedAt.UnixNano(), u.UpdatedAt.UnixNano())
	if err != nil {
		// The unique (tenant, email) constraint is the rule's guard; each
		// engine words its violation differently, so look.
		if _, ferr := s.UserByEmail(ctx, u.Tenant, u.Email); ferr == nil {
			return identity.ErrEmailTaken
		}
		return fmt.Errorf("identity store: add user: %w", err)
	}
	return nil
}

// User implements identity.Repository.
func (s *Store) User(ctx context.Context, id string) (identity.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM identity_users WHERE id = $1`, id))
}

// UserByEmail implements identity.Repository.
func (s *Store) UserByEmail(ctx context.Context, tenant, email string) (identity.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+cols+` FROM identity_users WHERE tenant = $1 AND email = $2`, tenant, email))
}

// UpdateUser implements identity.Repository.
func (s *Store) UpdateUser(ctx context.Context, id string, f func(*identity.User) error) (identity.User, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return identity.User{}, fmt.Errorf("identity store: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after commit
	q := `SELECT ` + cols + ` FROM identity_users WHERE id = $1`
	if s.postgres {
		q += ` FOR UPDATE`
	}
	u, err := scanUser(tx.QueryRowContext(ctx, q, id))
	if err != nil {
		return identity.User{}, err
	}
	if err := f(&u); err != nil {
		return identity.User{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE identity_users SET email = $1, name = $2, roles = $3, password_hash = $4,
		account_id = $5, updated_at = $6 WHERE id = $7`,
		u.Email, u.Name, roles(u), u.PasswordHash, u.AccountID, u.UpdatedAt.UnixNano(), id); err != nil {
		return identity.User{}, fmt.Errorf("identity store: update user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return identity.User{}, fmt.Errorf("identity store: commit: %w", err)
	}
	return u, nil
}

// DeleteUser implements identity.Repository.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM identity_users WHERE id = $1`, id); err != nil {
		return fmt.Errorf("identity store: delete user: %w", err)
	}
	return nil
}

var _ identity.RefreshTokens = (*Store)(nil)

// AddRefresh implements identity.RefreshTokens.
func (s *Store) AddRefresh(ctx context.Context, t identity.RefreshToken) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO identity_refresh_tokens (hash, family, user_id, tenant, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.Family, t.UserID, t.Tenant, t.CreatedAt.UnixNano(), t.ExpiresAt.UnixNano())
	if err != nil {
		return fmt.Errorf("identity store: add refresh token: %w", err)
	}
	return nil
}

// UseRefresh implements identity.RefreshTokens.
func (s *Store) UseRefresh(ctx context.Context, hash string, now time.Time) (identity.RefreshToken, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE identity_refresh_tokens SET used_at = $1
		WHERE hash = $2 AND used_at = 0 AND revoked_at = 0 AND expires_at > $1`, now.UnixNano(), hash)
	if err != nil {
		return identity.RefreshToken{}, fmt.Errorf("identity store: use refresh token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return identity.RefreshToken{}, fmt.Errorf("identity store: use refresh token: %w", err)
	}
	var (
		t                                   identity.RefreshToken
		created, expires, usedAt, revokedAt int64
	)
	err = s.db.QueryRowContext(ctx, `SELECT hash, family, user_id, tenant, created_at, expires_at, used_at, revoked_at
		FROM identity_refresh_tokens WHERE hash = $1`, hash).
		Scan(&t.Hash, &t.Family, &t.UserID, &t.Tenant, &created, &expires, &usedAt, &revokedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return identity.RefreshToken{}, identity.ErrRefreshUnknown
	}
	if err != nil {
		return identity.RefreshToken{}, fmt.Errorf("identity store: read refresh token: %w", err)
	}
	t.CreatedAt, t.ExpiresAt = time.Unix(0, created), time.Unix(0, expires)
	if usedAt != 0 {
		t.UsedAt = time.Unix(0, usedAt)
	}
	if revokedAt != 0 {
		t.RevokedAt = time.Unix(0, revokedAt)
	}
	switch {
	case n == 1:
		return t, nil
	case revokedAt != 0:
		return t, identity.ErrRefreshRevoked
	case usedAt != 0:
		return t, identity.ErrRefreshReused
	default: // expired
		return identity.RefreshToken{}, identity.ErrRefreshUnknown
	}
}

// RevokeFamily implements identity.RefreshTokens.
func (s *Store) RevokeFamily(ctx context.Context, family string, now time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE identity_refresh_tokens SET revoked_at = $1
		WHERE family = $2 AND revoked_at = 0`, now.UnixNano(), family)
	if err != nil {
		return 0, fmt.Errorf("identity store: revoke refresh tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("identity store: revoke refresh tokens: %w", err)
	}
	return int(n), nil
}
