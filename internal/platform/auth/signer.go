package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Signer issues EdDSA-signed access tokens with one Ed25519 key.
type Signer struct {
	key  ed25519.PrivateKey
	kid  string
	opts Options
	keys *KeySet
	now  func() time.Time
}

// NewSigner returns a Signer on key (see LoadOrCreateKey) that writes
// opts' issuer and audience into every token.
func NewSigner(key ed25519.PrivateKey, opts Options) *Signer {
	pub := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, kid: KeyID(pub), opts: opts.withDefaults(), keys: NewKeySet(pub), now: time.Now}
}

// KeyID returns the ID ("kid") of the signing key.
func (s *Signer) KeyID() string { return s.kid }

// Keys returns the public keys that verify the Signer's tokens, for a
// local Verifier.
func (s *Signer) Keys() *KeySet { return s.keys }

// JWKS returns the public keys as a JWKS JSON document.
func (s *Signer) JWKS() ([]byte, error) { return s.keys.JWKS() }

// Issue returns a signed token for c, valid for ttl (DefaultTTL if 0).
// It sets iss, aud, iat, nbf and exp, and a new jti unless c has one.
// c must name a subject and a tenant.
func (s *Signer) Issue(c Claims, ttl time.Duration) (string, error) {
	if c.Subject == "" || c.Tenant == "" {
		return "", errors.New("auth: a token needs a subject and a tenant")
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := s.now().Truncate(time.Second)
	c.Issuer = s.opts.Issuer
	c.Audience = jwt.ClaimStrings{s.opts.Audience}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	if c.ID == "" {
		c.ID = uuid.Must(uuid.NewV7()).String()
	}
	c.Roles = append([]string{}, c.Roles...) // "roles": [] rather than null
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = s.kid
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return signed, nil
}

// JWKSHandler serves the Signer's JWKS document (for
// GET /.well-known/jwks.json).
func (s *Signer) JWKSHandler() http.Handler {
	doc, err := s.JWKS()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(doc)
	})
}
