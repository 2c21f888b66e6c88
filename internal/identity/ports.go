package identity

import (
	"context"
	"errors"
	"time"
)

// Repository keeps tenants and users. Implementations enforce that an
// email is unique within a tenant.
type Repository interface {
	// CreateTenant adds t unless a tenant with its ID exists; created
	// reports which.
	CreateTenant(ctx context.Context, t Tenant) (created bool, err error)
	// Tenant returns tenant id, or ErrTenantNotFound.
	Tenant(ctx context.Context, id string) (Tenant, error)
	// AddUser adds u, or returns ErrEmailTaken if u's tenant has a user
	// with u's email.
	AddUser(ctx context.Context, u User) error
	// User returns user id, or ErrUserNotFound.
	User(ctx context.Context, id string) (User, error)
	// UserByEmail returns tenant's user with the (normalised) email, or
	// ErrUserNotFound.
	UserByEmail(ctx context.Context, tenant, email string) (User, error)
	// UpdateUser loads user id, lets f change it and stores the result,
	// atomically; an error from f aborts the update.
	UpdateUser(ctx context.Context, id string, f func(*User) error) (User, error)
	// DeleteUser removes user id; removing an absent user is no error.
	DeleteUser(ctx context.Context, id string) error
}

// Accounts opens payments accounts for new customers (the payments
// context, behind a port). OpenFor must be idempotent per user ID: a
// retry after an unknown outcome returns the same account.
type Accounts interface {
	// OpenFor opens an account owned by userID in tenant and returns its ID.
	OpenFor(ctx context.Context, tenant, userID string) (accountID string, err error)
}

// RefreshToken is one refresh token of a login's family, kept by the
// hash of its secret.
type RefreshToken struct {
	// Hash is the SHA-256 of the secret, hex.
	Hash string
	// Family is the login it belongs to (the access tokens' "sid").
	Family string
	// UserID and Tenant are whose it is.
	UserID, Tenant string
	// CreatedAt and ExpiresAt bound its life.
	CreatedAt, ExpiresAt time.Time
	// UsedAt is when it was exchanged (zero: not yet); RevokedAt when
	// its family was revoked (zero: not).
	UsedAt, RevokedAt time.Time
}

// Refresh token outcomes of RefreshTokens.Use.
var (
	// ErrRefreshUnknown: no such token, or it expired.
	ErrRefreshUnknown = errors.New("identity: unknown or expired refresh token")
	// ErrRefreshReused: the token was already exchanged once.
	ErrRefreshReused = errors.New("identity: refresh token used twice")
	// ErrRefreshRevoked: the token's family was revoked (logged out, or
	// a reuse seen).
	ErrRefreshRevoked = errors.New("identity: refresh token revoked")
)

// RefreshTokens keeps refresh tokens.
type RefreshTokens interface {
	// AddRefresh stores t.
	AddRefresh(ctx context.Context, t RefreshToken) error
	// UseRefresh marks the token with hash used at now, atomically and
	// once, and returns it; or ErrRefreshUnknown, or ErrRefreshReused or
	// ErrRefreshRevoked with the token.
	UseRefresh(ctx context.Context, hash string, now time.Time) (RefreshToken, error)
	// RevokeFamily revokes every token of family at now and returns how
	// many were live.
	RevokeFamily(ctx context.Context, family string, now time.Time) (int, error)
}

// Revoker revokes access tokens before they expire, for every gateway
// and service.
type Revoker interface {
	// Revoke revokes token id, which expires at until.
	Revoke(ctx context.Context, id string, until time.Time) error
}

// Audit records security-relevant actions.
type Audit interface {
	// Record appends e to tenant's audit log.
	Record(ctx context.Context, tenant string, e AuditEvent) error
}

// Audit event types.
const (
	// AuditLoginSucceeded: a user logged in and got a token.
	AuditLoginSucceeded = "identity.LoginSucceeded"
	// AuditLoginFailed: a login was refused; Reason says why.
	AuditLoginFailed = "identity.LoginFailed"
	// AuditLoginThrottled: a login attempt came before the wait that
	// earlier failures imposed was over, and was refused unchecked.
	AuditLoginThrottled = "identity.LoginThrottled"
	// AuditUserRegistered: a customer registered itself.
	AuditUserRegistered = "identity.UserRegistered"
	// AuditUserCreated: a user was created by an admin, the demo seed or
	// the bootstrap.
	AuditUserCreated = "identity.UserCreated"
	// AuditRolesChanged: a user's roles changed.
	AuditRolesChanged = "identity.RolesChanged"
	// AuditAdminBootstrapped: the bootstrap admin was created.
	AuditAdminBootstrapped = "identity.AdminBootstrapped"
	// AuditTenantCreated records a new tenant.
	AuditTenantCreated = "identity.TenantCreated"
	// AuditTokenRefreshed: a refresh token was exchanged for new tokens.
	AuditTokenRefreshed = "identity.TokenRefreshed"
	// AuditRefreshRefused: a refresh token was refused (unknown, expired
	// or revoked); Reason says which.
	AuditRefreshRefused = "identity.RefreshRefused"
	// AuditRefreshReused: a refresh token was presented a second time;
	// its whole family was revoked.
	AuditRefreshReused = "identity.RefreshTokenReused"
	// AuditLoggedOut: a user logged out; the access token and its
	// login's refresh tokens were revoked.
	AuditLoggedOut = "identity.LoggedOut"
)

// Reasons of AuditLoginFailed events (never shown to the client, which
// always gets ErrBadCredentials).
const (
	// ReasonUnknownUser: no user has the email in the tenant.
	ReasonUnknownUser = "unknown_user"
	// ReasonWrongPassword: the password did not match.
	ReasonWrongPassword = "wrong_password"
	// ReasonUnknownTenant: the tenant does not exist.
	ReasonUnknownTenant = "unknown_tenant"
	// ReasonMalformed: the email or tenant was not well-formed.
	ReasonMalformed = "malformed_input"
)

// UnknownTenant names the audit log of events about tenants that do not
// exist (e.g. a login naming one); it cannot be a tenant ID.
const UnknownTenant = "_unknown"

// AuditEvent is one audit record. It never holds a password or a token.
type AuditEvent struct {
	// Type is one of the Audit* event types.
	Type string `json:"-"`
	// Who acted: a user ID, or the email tried when no user matched.
	Who string `json:"who"`
	// What happened, in words.
	What string `json:"what"`
	// When it happened.
	When time.Time `json:"when"`
	// From is the client's network address.
	From string `json:"from,omitempty"`
	// UserAgent is the client's User-Agent.
	UserAgent string `json:"user_agent,omitempty"`
	// Subject is the user acted upon, when not Who.
	Subject string `json:"subject,omitempty"`
	// Roles are the roles granted, for creations and role changes.
	Roles []string `json:"roles,omitempty"`
	// Reason is a machine-readable reason, for failures.
	Reason string `json:"reason,omitempty"`
}

// Origin says where a request came from, for the audit log.
type Origin struct {
	// Addr is the client's network address.
	Addr string
	// UserAgent is the client's User-Agent header.
	UserAgent string
	// RequestID correlates the audit event with the request's logs.
	RequestID string
	// Actor is the ID of the authenticated user making the request, if any.
	Actor string
	// TraceParent is the request's W3C trace context.
	TraceParent string
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the Origin in ctx (zero if none).
func OriginFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}
