// Package app holds the identity context's use cases: registration, user
// creation, login (issuing access tokens), role changes, the bootstrap
// admin and the demo seed, each recorded in the audit log.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

// Config is what a Service needs.
type Config struct {
	// Repo keeps tenants and users (required).
	Repo identity.Repository
	// Signer issues access tokens (required).
	Signer *auth.Signer
	// Audit records security-relevant actions (required).
	Audit identity.Audit
	// Accounts opens a payments account for each new customer; nil opens none.
	Accounts identity.Accounts
	// Hasher hashes passwords; nil means identity.NewHasher(identity.DefaultParams).
	Hasher *identity.Hasher
	// TokenTTL is the lifetime of access tokens; 0 means auth.DefaultTTL.
	TokenTTL time.Duration
	// Logger receives warnings and failures; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock (nil: time.Now); login throttling's waits follow it.
	Now func() time.Time
	// Refresh keeps refresh tokens; nil issues none.
	Refresh identity.RefreshTokens
	// RefreshTTL is the lifetime of a refresh token (default
	// DefaultRefreshTTL); each exchange issues a new one.
	RefreshTTL time.Duration
	// Revoker revokes access tokens on logout; nil revokes none (the
	// login's refresh tokens are still revoked).
	Revoker identity.Revoker
}

// DefaultRefreshTTL is how long a refresh token lives unless exchanged.
const DefaultRefreshTTL = 7 * 24 * time.Hour

// Service runs the identity use cases. It is safe for concurrent use.
type Service struct {
	repo     identity.Repository
	signer   *auth.Signer
	audit    identity.Audit
	accounts identity.Accounts
	hasher   *identity.Hasher
	ttl      time.Duration
	log      *slog.Logger
	now      func() time.Time
	throttle *throttle
	refresh  identity.RefreshTokens
	rttl     time.Duration
	revoker  identity.Revoker
}

// New returns a Service, or an error if cfg lacks a required part.
func New(cfg Config) (*Service, error) {
	if cfg.Repo == nil || cfg.Signer == nil || cfg.Audit == nil {
		return nil, errors.New("identity app: Repo, Signer and Audit are required")
	}
	s := &Service{repo: cfg.Repo, signer: cfg.Signer, audit: cfg.Audit, accounts: cfg.Accounts,
		hasher: cfg.Hasher, ttl: cfg.TokenTTL, log: cfg.Logger, now: time.Now, throttle: newThrottle(),
		refresh: cfg.Refresh, rttl: cfg.RefreshTTL, revoker: cfg.Revoker}
	if s.rttl <= 0 {
		s.rttl = DefaultRefreshTTL
	}
	if s.hasher == nil {
		s.hasher = identity.NewHasher(identity.DefaultParams)
	}
	if s.ttl <= 0 {
		s.ttl = auth.DefaultTTL
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Now != nil {
		s.now = cfg.Now
	}
	return s, nil
}

// TokenTTL returns the lifetime of the access tokens Login issues.
func (s *Service) TokenTTL() time.Duration { return s.ttl }

// ErrUnknownTenant answers a registration or user creation in a tenant
// that does not exist.
var ErrUnknownTenant = &errs.Error{Code: errs.Unprocessable, Reason: "unknown_tenant", Message: "no such tenant",
	Fields: []errs.FieldError{{Field: "tenant", Message: "no such tenant"}}}

// Register creates a customer in tenant (identity.DefaultTenant if
// empty), opens its payments account and records the registration.
func (s *Service) Register(ctx context.Context, tenant, email, password, name string) (identity.User, error) {
	u, err := s.create(ctx, identity.NewUser{Tenant: tenant, Email: email, Password: password, Name: name,
		Roles: []identity.Role{identity.Customer}})
	if err != nil {
		return identity.User{}, err
	}
	s.record(ctx, u.Tenant, identity.AuditEvent{Type: identity.AuditUserRegistered, Who: u.ID, What: "registration",
		Roles: identity.RoleNames(u.Roles)})
	return u, nil
}

// CreateUser creates a user with roles in tenant (identity.DefaultTenant
// if empty), on behalf of identity.OriginFrom(ctx).Actor (e.g. an admin).
// A customer gets a payments account.
func (s *Service) CreateUser(ctx context.Context, tenant, email, password, name string, roles []identity.Role) (identity.User, error) {
	u, err := s.create(ctx, identity.NewUser{Tenant: tenant, Email: email, Password: password, Name: name, Roles: roles})
	if err != nil {
		return identity.User{}, err
	}
	s.record(ctx, u.Tenant, identity.AuditEvent{Type: identity.AuditUserCreated, Who: actor(ctx), What: "user created",
		Subject: u.ID, Roles: identity.RoleNames(u.Roles)})
	return u, nil
}

// CreateTenant adds tenant id (a lower-case slug) named name; an existing
// one is left as it is. It is an operator's action, audited in the new
// tenant's log.
func (s *Service) CreateTenant(ctx context.Context, id, name string) error {
	if fe := identity.CheckTenantID(id); fe != nil {
		return errs.Fields(*fe)
	}
	created, err := s.repo.CreateTenant(ctx, identity.Tenant{ID: id, Name: name, CreatedAt: s.now().UTC()})
	if err != nil {
		return err
	}
	if created {
		s.record(ctx, id, identity.AuditEvent{Type: identity.AuditTenantCreated, Who: actor(ctx), What: "tenant created", Subject: id})
	}
	return nil
}

func (s *Service) create(ctx context.Context, n identity.NewUser) (identity.User, error) {
	if n.Tenant == "" {
		n.Tenant = identity.DefaultTenant
	}
	if err := n.Validate(); err != nil {
		return identity.User{}, err
	}
	roles, err := identity.ParseRoles(identity.RoleNames(n.Roles))
	if err != nil {
		return identity.User{}, err
	}
	if _, err := s.repo.Tenant(ctx, n.Tenant); err != nil {
		if errors.Is(err, identity.ErrTenantNotFound) {
			return identity.User{}, ErrUnknownTenant
		}
		return identity.User{}, err
	}
	// Answer a taken email before paying for a hash; AddUser guards the race.
	if _, err := s.repo.UserByEmail(ctx, n.Tenant, n.Email); err == nil {
		return identity.User{}, identity.ErrEmailTaken
	} else if !errors.Is(err, identity.ErrUserNotFound) {
		return identity.User{}, err
	}
	hash, err := s.hasher.Hash(ctx, n.Password)
	if err != nil {
		return identity.User{}, err
	}
	now := s.now().UTC()
	u := identity.User{ID: uuid.Must(uuid.NewV7()).String(), Tenant: n.Tenant, Email: n.Email, Name: n.Name,
		Roles: roles, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.repo.AddUser(ctx, u); err != nil {
		return identity.User{}, err
	}
	if s.accounts == nil || !u.HasRole(identity.Customer) {
		return u, nil
	}
	acct, err := s.accounts.OpenFor(ctx, u.Tenant, u.ID)
	if err != nil {
		// Undo, so that the registration can be retried.
		if derr := s.repo.DeleteUser(context.WithoutCancel(ctx), u.ID); derr != nil {
			s.log.ErrorContext(ctx, "identity: removing a user whose account could not be opened", "user", u.ID, "err", derr)
		}
		return identity.User{}, fmt.Errorf("identity: open payments account: %w", err)
	}
	u, err = s.repo.UpdateUser(ctx, u.ID, func(x *identity.User) error {
		x.AccountID, x.UpdatedAt = acct, s.now().UTC()
		return nil
	})
	if err != nil {
		return identity.User{}, fmt.Errorf("identity: record account %s: %w", acct, err)
	}
	return u, nil
}

// Token is an issued access token.
type Token struct {
	// AccessToken is the signed JWT.
	AccessToken string
	// ExpiresIn is the token's lifetime.
	ExpiresIn time.Duration
	// RefreshToken exchanges for the next tokens, once
	// (POST /api/v1/auth/refresh); empty when the service keeps none.
	RefreshToken string
	// RefreshExpiresIn is the refresh token's lifetime.
	RefreshExpiresIn time.Duration
	// User is the user the token is for.
	User identity.User
}

// Login checks email and password in tenant (identity.DefaultTenant if
// empty) and issues an access token. Every failure returns
// identity.ErrBadCredentials after the same work (a password hash), so
// that neither the answer nor its timing tells an unknown user from a
// wrong password; the audit log records the real reason.
func (s *Service) Login(ctx context.Context, tenant, email, password string) (Token, error) {
	if tenant == "" {
		tenant = identity.DefaultTenant
	}
	tried := clip(strings.TrimSpace(email), identity.MaxEmailBytes)
	key := throttleKey(tenant, tried)
	if norm, fe := identity.NormalizeEmail(email); fe == nil {
		key = throttleKey(tenant, norm)
	}
	auditTenant := func() string {
		if identity.CheckTenantID(tenant) != nil {
			return identity.UnknownTenant
		}
		return tenant
	}
	if wait := s.throttle.wait(key, s.now()); wait > 0 {
		s.record(ctx, auditTenant(), identity.AuditEvent{Type: identity.AuditLoginThrottled, Who: tried, What: "login",
			Reason: "too many failed logins; retry in " + wait.Round(time.Second).String()})
		return Token{}, throttled(wait)
	}
	fail := func(auditTenant, who, reason string) (Token, error) {
		s.record(ctx, auditTenant, identity.AuditEvent{Type: identity.AuditLoginFailed, Who: who, What: "login", Reason: reason})
		s.throttle.failed(key, s.now())
		return Token{}, identity.ErrBadCredentials
	}
	if identity.CheckTenantID(tenant) != nil {
		s.hasher.VerifyNothing(ctx, password)
		return fail(identity.UnknownTenant, tried, identity.ReasonMalformed)
	}
	if _, err := s.repo.Tenant(ctx, tenant); err != nil {
		if !errors.Is(err, identity.ErrTenantNotFound) {
			return Token{}, err
		}
		s.hasher.VerifyNothing(ctx, password)
		return fail(identity.UnknownTenant, tried, identity.ReasonUnknownTenant)
	}
	norm, fe := identity.NormalizeEmail(email)
	if fe != nil {
		s.hasher.VerifyNothing(ctx, password)
		return fail(tenant, tried, identity.ReasonMalformed)
	}
	u, err := s.repo.UserByEmail(ctx, tenant, norm)
	if errors.Is(err, identity.ErrUserNotFound) {
		s.hasher.VerifyNothing(ctx, password)
		return fail(tenant, norm, identity.ReasonUnknownUser)
	}
	if err != nil {
		return Token{}, err
	}
	ok, err := s.hasher.Verify(ctx, u.PasswordHash, password)
	if err != nil {
		if ctx.Err() != nil {
			return Token{}, err
		}
		s.log.ErrorContext(ctx, "identity: stored password hash is unusable", "user", u.ID, "err", err)
		return fail(tenant, u.ID, "bad_hash")
	}
	if !ok {
		return fail(tenant, u.ID, identity.ReasonWrongPassword)
	}
	tok, err := s.issue(ctx, u, uuid.NewString())
	if err != nil {
		return Token{}, err
	}
	s.throttle.succeeded(key)
	// No token leaves without its audit record.
	if err := s.audit.Record(ctx, tenant, s.event(ctx, identity.AuditEvent{Type: identity.AuditLoginSucceeded, Who: u.ID, What: "login"})); err != nil {
		return Token{}, &errs.Error{Code: errs.Unavailable, Message: "login is unavailable", Err: err}
	}
	return tok, nil
}

// issue signs an access token for u in login family and, when the
// service keeps refresh tokens, the family's next refresh token.
func (s *Service) issue(ctx context.Context, u identity.User, family string) (Token, error) {
	access, err := s.signer.Issue(auth.Claims{Tenant: u.Tenant, Roles: identity.RoleNames(u.Roles), Email: u.Email, Session: family,
		RegisteredClaims: jwt.RegisteredClaims{Subject: u.ID}}, s.ttl)
	if err != nil {
		return Token{}, err
	}
	tok := Token{AccessToken: access, ExpiresIn: s.ttl, User: u}
	if s.refresh == nil {
		return tok, nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Token{}, fmt.Errorf("identity: refresh token: %w", err)
	}
	tok.RefreshToken = refreshPrefix + base64.RawURLEncoding.EncodeToString(secret)
	now := s.now().UTC()
	if err := s.refresh.AddRefresh(ctx, identity.RefreshToken{Hash: hashRefresh(tok.RefreshToken), Family: family,
		UserID: u.ID, Tenant: u.Tenant, CreatedAt: now, ExpiresAt: now.Add(s.rttl)}); err != nil {
		return Token{}, &errs.Error{Code: errs.Unavailable, Message: "tokens cannot be issued right now", Err: err}
	}
	tok.RefreshExpiresIn = s.rttl
	return tok, nil
}

// refreshPrefix starts every refresh token, telling it from an access
// token (and in a leaked secret scanner's rules).
const refreshPrefix = "agora_rt_"

// hashRefresh is the stored form of a refresh token.
func hashRefresh(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ErrRefreshRefused answers any refresh token that cannot be exchanged:
// unknown, expired, used before or revoked — alike, so that the answer
// tells a thief nothing.
var ErrRefreshRefused = &errs.Error{Code: errs.Unauthenticated, Reason: "invalid_refresh_token",
	Message: "the refresh token is invalid, expired or revoked; log in again"}

// Refresh exchanges a refresh token for a new access token and the next
// refresh token of its family (rotation). A token presented a second
// time — stolen, or replayed — revokes its whole family, so that neither
// the thief nor the owner can go on without logging in again.
func (s *Service) Refresh(ctx context.Context, token string) (Token, error) {
	if s.refresh == nil || !strings.HasPrefix(token, refreshPrefix) || len(token) > 128 {
		return Token{}, ErrRefreshRefused
	}
	now := s.now().UTC()
	rt, err := s.refresh.UseRefresh(ctx, hashRefresh(token), now)
	switch {
	case errors.Is(err, identity.ErrRefreshReused):
		n, rerr := s.refresh.RevokeFamily(ctx, rt.Family, now)
		if rerr != nil {
			return Token{}, rerr
		}
		s.record(ctx, rt.Tenant, identity.AuditEvent{Type: identity.AuditRefreshReused, Who: rt.UserID, What: "refresh",
			Reason: fmt.Sprintf("a used refresh token came back; its login (%d live tokens) revoked", n)})
		return Token{}, ErrRefreshRefused
	case errors.Is(err, identity.ErrRefreshRevoked):
		s.record(ctx, rt.Tenant, identity.AuditEvent{Type: identity.AuditRefreshRefused, Who: rt.UserID, What: "refresh", Reason: "revoked"})
		return Token{}, ErrRefreshRefused
	case errors.Is(err, identity.ErrRefreshUnknown):
		s.record(ctx, identity.UnknownTenant, identity.AuditEvent{Type: identity.AuditRefreshRefused, What: "refresh", Reason: "unknown_or_expired"})
		return Token{}, ErrRefreshRefused
	case err != nil:
		return Token{}, err
	}
	u, err := s.repo.User(ctx, rt.UserID)
	if errors.Is(err, identity.ErrUserNotFound) {
		s.record(ctx, rt.Tenant, identity.AuditEvent{Type: identity.AuditRefreshRefused, Who: rt.UserID, What: "refresh", Reason: "unknown_user"})
		return Token{}, ErrRefreshRefused
	}
	if err != nil {
		return Token{}, err
	}
	tok, err := s.issue(ctx, u, rt.Family)
	if err != nil {
		return Token{}, err
	}
	if err := s.audit.Record(ctx, rt.Tenant, s.event(ctx, identity.AuditEvent{Type: identity.AuditTokenRefreshed, Who: u.ID, What: "refresh"})); err != nil {
		return Token{}, &errs.Error{Code: errs.Unavailable, Message: "refresh is unavailable", Err: err}
	}
	return tok, nil
}

// Logout revokes the access token c until it expires, on every gateway
// and service, and its login's refresh tokens (the token's "sid").
func (s *Service) Logout(ctx context.Context, c *auth.Claims) (refreshRevoked int, err error) {
	now := s.now().UTC()
	if s.revoker != nil && c.ID != "" && c.ExpiresAt != nil {
		if err := s.revoker.Revoke(ctx, c.ID, c.ExpiresAt.Time); err != nil {
			return 0, &errs.Error{Code: errs.Unavailable, Message: "logout is unavailable; retry", Err: err}
		}
	}
	revoked := 0
	if s.refresh != nil && c.Session != "" {
		n, err := s.refresh.RevokeFamily(ctx, c.Session, now)
		if err != nil {
			return 0, &errs.Error{Code: errs.Unavailable, Message: "logout is unavailable; retry", Err: err}
		}
		revoked = n
	}
	s.record(ctx, c.Tenant, identity.AuditEvent{Type: identity.AuditLoggedOut, Who: c.Subject, What: "logout",
		Reason: fmt.Sprintf("access token revoked; %d refresh tokens revoked", revoked)})
	return revoked, nil
}

// throttled is the answer to a login attempt that came before its wait
// was over: the same for every email, registered or not.
func throttled(wait time.Duration) error {
	return &errs.Error{Code: errs.TooManyRequests, Reason: "login_throttled",
		Message: "too many failed logins for this email; wait before trying again", RetryAfter: wait}
}

// Get returns user id, or identity.ErrUserNotFound.
func (s *Service) Get(ctx context.Context, id string) (identity.User, error) {
	return s.repo.User(ctx, id)
}

// SetRoles replaces user id's roles, on behalf of
// identity.OriginFrom(ctx).Actor, and records the change.
func (s *Service) SetRoles(ctx context.Context, id string, roles []identity.Role) (identity.User, error) {
	rs, err := identity.ParseRoles(identity.RoleNames(roles))
	if err != nil {
		return identity.User{}, err
	}
	u, err := s.repo.UpdateUser(ctx, id, func(u *identity.User) error {
		u.Roles, u.UpdatedAt = rs, s.now().UTC()
		return nil
	})
	if err != nil {
		return identity.User{}, err
	}
	s.record(ctx, u.Tenant, identity.AuditEvent{Type: identity.AuditRolesChanged, Who: actor(ctx), What: "roles changed",
		Subject: u.ID, Roles: identity.RoleNames(rs)})
	return u, nil
}

// event fills e's time and origin.
func (s *Service) event(ctx context.Context, e identity.AuditEvent) identity.AuditEvent {
	o := identity.OriginFrom(ctx)
	e.When = s.now().UTC()
	e.From = clip(o.Addr, 128)
	e.UserAgent = clip(o.UserAgent, 256)
	return e
}

// record appends e to tenant's audit log; a failure is logged, not
// returned, because the action it records already happened.
func (s *Service) record(ctx context.Context, tenant string, e identity.AuditEvent) {
	if err := s.audit.Record(ctx, tenant, s.event(ctx, e)); err != nil {
		s.log.ErrorContext(ctx, "identity: audit record lost", "type", e.Type, "tenant", tenant, "err", err)
	}
}

func actor(ctx context.Context) string {
	if a := identity.OriginFrom(ctx).Actor; a != "" {
		return a
	}
	return "system"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
