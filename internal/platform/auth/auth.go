// Package auth is the JWT contract every Agora service shares: the claims
// a token carries, a Signer that issues Ed25519 (EdDSA) tokens and
// publishes its public keys as a JWKS document, and a Verifier that
// checks bearer tokens against a local key set or a remote JWKS URL.
//
// Failures are *errs.Error values with code errs.Unauthenticated (401) or
// errs.Forbidden (403), ready for httpapi.Error.
package auth

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agora-commerce/agora/internal/platform/errs"
)

// Defaults shared by Signer and Verifier.
const (
	// DefaultIssuer is the "iss" of tokens when Options leave it empty.
	DefaultIssuer = "agora-identity"
	// DefaultAudience is the "aud" of tokens when Options leave it empty.
	DefaultAudience = "agora"
	// DefaultTTL is how long an issued token is valid when Issue gets 0.
	DefaultTTL = 15 * time.Minute
	// DefaultLeeway is the clock skew a Verifier tolerates on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
)

// Roles known to every context.
const (
	// RoleCustomer buys and owns its orders and accounts.
	RoleCustomer = "customer"
	// RoleMerchant manages the catalog and stock.
	RoleMerchant = "merchant"
	// RoleAdmin may do anything within its tenant.
	RoleAdmin = "admin"
)

// Options name the issuer and audience a Signer writes and a Verifier
// requires. Zero fields take DefaultIssuer and DefaultAudience.
type Options struct {
	// Issuer is the "iss" claim.
	Issuer string
	// Audience is the "aud" claim.
	Audience string
	// MaxLifetime is the longest lifetime (exp − iat) a verifier accepts
	// (default DefaultMaxLifetime): a validly signed token that claims to
	// live longer is refused.
	MaxLifetime time.Duration
	// Revoked, if set, names the tokens (by "jti") revoked before they
	// expire — logged out — which the verifier then refuses.
	Revoked Revocations
	// OnRefused records a token refused for anything but its age (a bad
	// signature or encoding, a header naming a key or an extension, a
	// lifetime past MaxLifetime, a revoked token); the error says which,
	// and holds no part of the token. Default: a warning on slog's
	// default logger, attribute audit=auth.TokenRefused.
	OnRefused func(ctx context.Context, err error)
	// HTTPClient fetches a remote key set (NewRemoteVerifier), e.g. one
	// trusting a private CA (default: keyfunc's, Go's default client).
	HTTPClient *http.Client
}

// Revocations tells whether a token, by its ID ("jti"), was revoked.
type Revocations interface {
	// Revoked reports whether token id was revoked.
	Revoked(id string) bool
}

// ErrRevoked is the answer to a token that was revoked (logged out).
var ErrRevoked = &errs.Error{Code: errs.Unauthenticated, Reason: "invalid_token", Message: "the bearer token has been revoked"}

// DefaultMaxLifetime is the longest token lifetime a verifier accepts by
// default. Identity issues tokens of DefaultTTL.
const DefaultMaxLifetime = 24 * time.Hour

func (o Options) withDefaults() Options {
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = DefaultMaxLifetime
	}
	return o
}

// Claims is what an Agora access token says: who (the registered "sub"
// claim is the user ID), in which tenant, with which roles.
type Claims struct {
	// Tenant is the tenant the user belongs to.
	Tenant string `json:"tenant"`
	// Roles are the user's roles (customer, merchant, admin).
	Roles []string `json:"roles"`
	// Email is the user's (normalised) email address.
	Email string `json:"email,omitempty"`
	// Session is the login the token belongs to: its refresh tokens'
	// family, revoked as one on logout.
	Session string `json:"sid,omitempty"`
	// RegisteredClaims holds iss, sub, aud, exp, nbf, iat and jti.
	jwt.RegisteredClaims
}

// UserID returns the subject: the user's ID.
func (c *Claims) UserID() string { return c.Subject }

// HasRole reports whether the claims include role.
func (c *Claims) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// Require returns nil if the claims include at least one of roles, else an
// errs.Forbidden error.
func (c *Claims) Require(roles ...string) error {
	for _, r := range roles {
		if c.HasRole(r) {
			return nil
		}
	}
	return &errs.Error{Code: errs.Forbidden, Reason: "missing_role", Message: "this requires one of the roles " + strings.Join(roles, ", ")}
}

// Validate is called by the JWT parser after the registered claims were
// checked: an Agora token must name a subject and a tenant.
func (c Claims) Validate() error {
	if c.Subject == "" || c.Tenant == "" {
		return jwt.ErrTokenRequiredClaimMissing
	}
	return nil
}

// Errors the Verifier returns; both are errs.Unauthenticated (401).
var (
	// ErrNoToken reports a request without a bearer token.
	ErrNoToken = &errs.Error{Code: errs.Unauthenticated, Reason: "missing_token", Message: "a bearer token is required"}
	// ErrInvalidToken reports a token that is malformed, badly signed,
	// expired, not yet valid or meant for another issuer or audience.
	ErrInvalidToken = &errs.Error{Code: errs.Unauthenticated, Reason: "invalid_token", Message: "the bearer token is invalid or expired"}
)

type claimsKey struct{}

// WithClaims returns ctx carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims WithClaims (or the Verifier's middleware)
// put in ctx.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
