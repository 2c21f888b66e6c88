package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/maypok86/otter/v2"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// MaxTokenBytes bounds the size of a bearer token; longer ones are
// rejected unparsed.
const MaxTokenBytes = 8 << 10

// Verifier checks access tokens: EdDSA only, signed by a key it knows by
// "kid" (its own key set, or identity's JWKS document at a configured
// URL — never a key or key URL the token names: a token with "jku",
// "x5u", "jwk" or "x5c" in its header is refused unread, and so is one
// with a "crit" header, since Agora understands no JWS extension, RFC 7515
// §4.1.11), with its issuer and audience, an expiry, a lifetime (exp −
// iat) of at most Options.MaxLifetime, and iat/nbf not in the future
// (DefaultLeeway of clock skew allowed); at most MaxTokenBytes long. It
// is safe for concurrent use.
type Verifier struct {
	parser      *jwt.Parser
	maxLifetime time.Duration
	key         func(ctx context.Context) jwt.Keyfunc
	// verified remembers tokens that passed, until they expire: a client
	// sends the same token with every request for its lifetime, and an
	// Ed25519 verification costs ~100 µs of CPU (twice per request: at the
	// gateway and at the service). The key is the whole token, so a token
	// altered in any byte is a miss and is verified afresh.
	verified *otter.Cache[string, *Claims]
	revoked  Revocations
	refused  func(ctx context.Context, err error)
}

// verifiedTokens bounds the verified-token cache.
const verifiedTokens = 65_536

func newVerifier(opts Options, key func(ctx context.Context) jwt.Keyfunc) *Verifier {
	opts = opts.withDefaults()
	if opts.OnRefused == nil {
		opts.OnRefused = func(ctx context.Context, err error) {
			slog.WarnContext(ctx, "auth: token refused", "audit", "auth.TokenRefused", "reason", err.Error())
		}
	}
	return &Verifier{
		verified: otter.Must(&otter.Options[string, *Claims]{
			MaximumSize: verifiedTokens,
			ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[string, *Claims]) time.Duration {
				return time.Until(e.Value.ExpiresAt.Time)
			}),
		}),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(opts.Issuer),
			jwt.WithAudience(opts.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(DefaultLeeway),
			// The unused low bits of a segment's last character must be
			// zero: else one signature has several spellings.
			jwt.WithStrictDecoding(),
		),
		key:         key,
		maxLifetime: opts.MaxLifetime,
		revoked:     opts.Revoked,
		refused:     opts.OnRefused,
	}
}

// refusedHeaders are JOSE header parameters a verifier refuses: a token
// may not choose its own key (RFC 8725 §3.10) or demand extensions.
var refusedHeaders = []string{"crit", "jku", "x5u", "jwk", "x5c"}

var errNoKid = errors.New(`auth: token header has no "kid"`)

func kidOf(t *jwt.Token) (string, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return "", errNoKid
	}
	return kid, nil
}

// NewVerifier returns a Verifier that knows the keys of keys (e.g.
// Signer.Keys, in the process that issues tokens).
func NewVerifier(keys *KeySet, opts Options) *Verifier {
	kf := func(t *jwt.Token) (any, error) {
		kid, err := kidOf(t)
		if err != nil {
			return nil, err
		}
		k, ok := keys.Key(kid)
		if !ok {
			return nil, fmt.Errorf("auth: unknown key ID %q", kid)
		}
		return k, nil
	}
	return newVerifier(opts, func(context.Context) jwt.Keyfunc { return kf })
}

// NewRemoteVerifier returns a Verifier whose keys come from the JWKS
// document at jwksURL (the identity service's /.well-known/jwks.json),
// fetched now, refreshed periodically and on an unknown "kid" (rate
// limited), until ctx ends. A first fetch that fails is not an error: the
// keys are fetched again when a token needs them.
func NewRemoteVerifier(ctx context.Context, jwksURL string, opts Options) (*Verifier, error) {
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:          opts.HTTPClient,
		HTTPTimeout:     10 * time.Second,
		RefreshInterval: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS from %s: %w", jwksURL, err)
	}
	return newVerifier(opts, func(ctx context.Context) jwt.Keyfunc {
		inner := kf.KeyfuncCtx(ctx)
		return func(t *jwt.Token) (any, error) {
			// Without a kid, keyfunc would try every key; Agora tokens always name theirs.
			if _, err := kidOf(t); err != nil {
				return nil, err
			}
			return inner(t)
		}
	}), nil
}

// Verify checks token and returns its claims, or an error that
// errors.Is ErrInvalidToken (401).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.verify(ctx, token)
	if err != nil && token != "" && !errors.Is(err, jwt.ErrTokenExpired) {
		// A token refused for anything but its age is worth a record:
		// forged, altered, replayed after logout, or naming its own key.
		v.refused(ctx, err)
	}
	return c, err
}

func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return nil, invalid(errors.New("auth: token too long"))
	}
	// A remembered token passed every check below as it is, character
	// for character (the cache is keyed by the whole token): only its
	// expiry and revocation are looked at again.
	if c, ok := v.verified.GetIfPresent(token); ok && time.Now().Before(c.ExpiresAt.Time) {
		if v.revoked != nil && v.revoked.Revoked(c.ID) {
			return nil, ErrRevoked
		}
		cp := *c // callers must not change the remembered claims
		cp.Roles, cp.Audience = slices.Clone(c.Roles), slices.Clone(c.Audience)
		return &cp, nil
	}
	if !compactJWS(token) {
		return nil, invalid(errors.New("auth: token has characters a compact JWS does not"))
	}
	var c Claims
	keyfunc := v.key(ctx)
	t, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// Before any key is looked up: nothing the token says about keys
		// is fetched or trusted.
		for _, h := range refusedHeaders {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("auth: token header %q is not accepted", h)
			}
		}
		return keyfunc(t)
	})
	if err != nil {
		return nil, invalid(err)
	}
	from := time.Now()
	if c.IssuedAt != nil {
		from = c.IssuedAt.Time
	}
	if t == nil || c.ExpiresAt.Sub(from) > v.maxLifetime {
		return nil, invalid(fmt.Errorf("auth: token lifetime %s is longer than %s", c.ExpiresAt.Sub(from).Round(time.Second), v.maxLifetime))
	}
	if v.revoked != nil && v.revoked.Revoked(c.ID) {
		return nil, ErrRevoked
	}
	if c.ExpiresAt != nil {
		cp := c
		cp.Roles, cp.Audience = slices.Clone(c.Roles), slices.Clone(c.Audience)
		v.verified.Set(token, &cp)
	}
	return &c, nil
}

// compactJWS reports whether token holds only base64url characters and
// dots. Base64 decoding skips CR and LF, so without this check a token
// with line breaks added would pass as the token issued.
func compactJWS(token string) bool {
	for i := 0; i < len(token); i++ {
		if !jwsByte[token[i]] {
			return false
		}
	}
	return true
}

// jwsByte tells the bytes of a compact JWS: base64url's and the dot.
var jwsByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	return t
}()

func invalid(err error) error {
	e := *ErrInvalidToken
	e.Err = err
	if errors.Is(err, jwt.ErrTokenExpired) {
		e.Message = "the bearer token has expired"
	}
	return &e
}

// BearerToken returns the token of r's "Authorization: Bearer" header,
// or ErrNoToken.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", ErrNoToken
	}
	return token, nil
}

// Authenticate verifies r's bearer token or, for a request without an
// Authorization header, its browser session (SessionFrom: the session
// cookie, and for an unsafe method the CSRF token that goes with it).
func (v *Verifier) Authenticate(r *http.Request) (*Claims, error) {
	token, err := BearerToken(r)
	if err == ErrNoToken && r.Header.Get("Authorization") == "" {
		token, err = SessionFrom(r)
	}
	if err != nil {
		return nil, err
	}
	return v.Verify(r.Context(), token)
}

// Middleware lets through requests with a valid bearer token, their
// claims in the context (see ClaimsFrom), and answers the others 401
// problem+json with a WWW-Authenticate challenge (RFC 6750).
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Authenticate(r)
		if err != nil {
			Challenge(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
	})
}

// Challenge writes err as problem+json; for an errs.Unauthenticated error
// it first adds the WWW-Authenticate header RFC 6750 asks for.
func Challenge(w http.ResponseWriter, r *http.Request, err error) {
	if errs.CodeOf(err) == errs.Unauthenticated {
		c := `Bearer realm="agora"`
		if errs.ReasonOf(err) == ErrInvalidToken.Reason {
			c += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", c)
	}
	httpapi.Error(w, r, err)
}
