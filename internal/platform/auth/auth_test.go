package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

func newSigner(t *testing.T) (*auth.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewSigner(priv, auth.Options{}), priv
}

// claims returns valid claims as the Signer would write them.
func claims() auth.Claims {
	now := time.Now()
	return auth.Claims{
		Tenant: "demo", Roles: []string{auth.RoleCustomer}, Email: "a@example.com",
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: "user-1", Issuer: auth.DefaultIssuer, Audience: jwt.ClaimStrings{auth.DefaultAudience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), ID: "jti-1",
		},
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signWith signs c with extra JOSE header parameters.
func signWith(t *testing.T, key ed25519.PrivateKey, kid string, c auth.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = kid
	maps.Copy(tok.Header, header)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestVerifierTrustsNoKeyATokenNames: validly signed tokens that name a
// key or a key URL, demand an extension, or claim a long life are
// refused, and nothing they name is fetched.
func TestVerifierTrustsNoKeyATokenNames(t *testing.T) {
	s, priv := newSigner(t)
	kid := s.KeyID()
	var dialled atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	url := "http://" + ln.Addr().String() + "/keys"
	jwk := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
	long := claims()
	long.ExpiresAt = jwt.NewNumericDate(time.Now().Add(10 * 365 * 24 * time.Hour))
	cases := map[string]string{
		"crit":                signWith(t, priv, kid, claims(), map[string]any{"crit": []string{"exp"}}),
		"crit of an unknown":  signWith(t, priv, kid, claims(), map[string]any{"crit": []string{"agora-ext"}, "agora-ext": true}),
		"jku":                 signWith(t, priv, kid, claims(), map[string]any{"jku": url}),
		"x5u":                 signWith(t, priv, kid, claims(), map[string]any{"x5u": url}),
		"jwk":                 signWith(t, priv, kid, claims(), map[string]any{"jwk": jwk}),
		"x5c":                 signWith(t, priv, kid, claims(), map[string]any{"x5c": []string{"MIIB"}}),
		"a ten-year lifetime": signWith(t, priv, kid, long, nil),
	}
	for _, remote := range []bool{false, true} {
		v := auth.NewVerifier(s.Keys(), auth.Options{})
		if remote {
			doc, err := s.Keys().JWKS()
			if err != nil {
				t.Fatal(err)
			}
			jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(doc)
			}))
			t.Cleanup(jwks.Close)
			if v, err = auth.NewRemoteVerifier(context.Background(), jwks.URL, auth.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := v.Verify(context.Background(), signWith(t, priv, kid, claims(), nil)); err != nil {
			t.Fatalf("remote %v: a good token refused: %v", remote, err)
		}
		for name, token := range cases {
			if c, err := v.Verify(context.Background(), token); err == nil || errs.CodeOf(err) != errs.Unauthenticated {
				t.Errorf("remote %v, %s: %+v, %v; want 401", remote, name, c, err)
			}
		}
	}
	if n := dialled.Load(); n != 0 {
		t.Errorf("the URL a token named was dialled %d times", n)
	}
	// A verifier configured for longer lifetimes takes the long token.
	v := auth.NewVerifier(s.Keys(), auth.Options{MaxLifetime: 11 * 365 * 24 * time.Hour})
	if _, err := v.Verify(context.Background(), cases["a ten-year lifetime"]); err != nil {
		t.Errorf("MaxLifetime 11 years: %v", err)
	}
}

func TestIssueAndVerify(t *testing.T) {
	s, _ := newSigner(t)
	v := auth.NewVerifier(s.Keys(), auth.Options{})
	token, err := s.Issue(auth.Claims{Tenant: "demo", Roles: []string{"merchant"}, Email: "m@example.com",
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("good token rejected: %v", err)
	}
	if c.UserID() != "u1" || c.Tenant != "demo" || !c.HasRole("merchant") || c.Email != "m@example.com" ||
		c.Issuer != auth.DefaultIssuer || c.ID == "" {
		t.Fatalf("claims %+v", c)
	}
	if ttl := c.ExpiresAt.Sub(c.IssuedAt.Time); ttl != auth.DefaultTTL {
		t.Fatalf("ttl %v, want %v", ttl, auth.DefaultTTL)
	}
	if _, err := s.Issue(auth.Claims{Tenant: "demo"}, time.Minute); err == nil {
		t.Fatal("a token without subject was issued")
	}
}

func TestVerifierRejects(t *testing.T) {
	s, priv := newSigner(t)
	kid := s.KeyID()
	v := auth.NewVerifier(s.Keys(), auth.Options{})
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*auth.Claims)) auth.Claims {
		c := claims()
		f(&c)
		return c
	}
	good := sign(t, jwt.SigningMethodEdDSA, priv, kid, claims())
	parts := strings.Split(good, ".")
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims())
	noneWithKid := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims())
	pub := priv.Public().(ed25519.PublicKey)

	cases := map[string]string{
		"empty":                               "",
		"malformed":                           "not.a.jwt",
		"garbage":                             "abc",
		"truncated signature":                 parts[0] + "." + parts[1] + ".",
		"too long":                            good + strings.Repeat("A", auth.MaxTokenBytes),
		"expired":                             sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) })),
		"no expiry":                           sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.ExpiresAt = nil })),
		"not yet valid":                       sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })),
		"issued in the future":                sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) })),
		"bad signature":                       sign(t, jwt.SigningMethodEdDSA, other, kid, claims()),
		"alg none":                            none,
		"alg none with kid":                   noneWithKid,
		"HS256 with the public key as secret": sign(t, jwt.SigningMethodHS256, []byte(pub), kid, claims()),
		"RS256":                               sign(t, jwt.SigningMethodRS256, rsaKey, kid, claims()),
		"wrong issuer":                        sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.Issuer = "evil" })),
		"wrong audience":                      sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} })),
		"unknown kid":                         sign(t, jwt.SigningMethodEdDSA, priv, "nope", claims()),
		"no kid":                              sign(t, jwt.SigningMethodEdDSA, priv, "", claims()),
		"no tenant":                           sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.Tenant = "" })),
		"no subject":                          sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.Subject = "" })),
		"signature swapped":                   parts[0] + "." + parts[1] + "." + strings.Split(sign(t, jwt.SigningMethodEdDSA, priv, kid, with(func(c *auth.Claims) { c.Subject = "admin" })), ".")[2],
		"claims tampered":                     parts[0] + "." + strings.Split(sign(t, jwt.SigningMethodEdDSA, other, kid, with(func(c *auth.Claims) { c.Roles = []string{"admin"} })), ".")[1] + "." + parts[2],
		"other key, own kid":                  sign(t, jwt.SigningMethodEdDSA, other, auth.KeyID(other.Public().(ed25519.PublicKey)), claims()),
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("good token rejected: %v", err)
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), token)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if errs.CodeOf(err) != errs.Unauthenticated {
				t.Fatalf("code %s, want unauthenticated: %v", errs.CodeOf(err), err)
			}
			// Over HTTP: 401 problem+json with a challenge.
			h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Fatal("handler reached") }))
			r := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized || w.Header().Get("Content-Type") != "application/problem+json" ||
				!strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("answered %d %v", w.Code, w.Header())
			}
		})
	}
}

func TestExpiredMessage(t *testing.T) {
	s, priv := newSigner(t)
	c := claims()
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	_, err := auth.NewVerifier(s.Keys(), auth.Options{}).Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), c))
	if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("err = %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	s, _ := newSigner(t)
	v := auth.NewVerifier(s.Keys(), auth.Options{})
	token, err := s.Issue(auth.Claims{Tenant: "t1", RegisteredClaims: jwt.RegisteredClaims{Subject: "u9"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := auth.ClaimsFrom(r.Context())
		if !ok {
			t.Fatal("no claims in context")
		}
		if err := c.Require(auth.RoleAdmin); err != nil {
			httpapi.Error(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct {
		header string
		status int
	}{
		{"", 401},
		{"Basic dXNlcjpwdw==", 401},
		{"Bearer", 401},
		{"Bearer " + token, 403}, // valid, but not an admin
		{"bearer " + token, 403},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%q: %d %s", tc.header, w.Code, w.Body)
		}
	}
	if _, ok := auth.ClaimsFrom(context.Background()); ok {
		t.Fatal("claims from an empty context")
	}
}

func TestJWKS(t *testing.T) {
	s, _ := newSigner(t)
	doc, err := s.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", doc, err)
	}
	k := set.Keys[0]
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] != s.KeyID() || len(k["x"]) != 43 {
		t.Fatalf("JWK %v", k)
	}
	token, err := s.Issue(auth.Claims{Tenant: "demo", RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	// keyfunc parses the document back and verifies the token with it.
	kf, err := keyfunc.NewJWKSetJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	var c auth.Claims
	if _, err := jwt.ParseWithClaims(token, &c, kf.Keyfunc, jwt.WithValidMethods([]string{"EdDSA"})); err != nil || c.Subject != "u1" {
		t.Fatalf("keyfunc verify: %v", err)
	}

	// A remote Verifier fetches the document over HTTP.
	srv := httptest.NewServer(s.JWKSHandler())
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rv, err := auth.NewRemoteVerifier(ctx, srv.URL, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := rv.Verify(ctx, token)
	if err != nil || got.Subject != "u1" {
		t.Fatalf("remote verify: %v", err)
	}
	other, _ := newSigner(t)
	bad, _ := other.Issue(auth.Claims{Tenant: "demo", RegisteredClaims: jwt.RegisteredClaims{Subject: "u1"}}, time.Minute)
	if _, err := rv.Verify(ctx, bad); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("remote verifier accepted another key's token: %v", err)
	}
	_, priv := newSigner(t)
	c2 := claims()
	noKid := sign(t, jwt.SigningMethodEdDSA, priv, "", c2)
	if _, err := rv.Verify(ctx, noKid); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("remote verifier accepted a token without kid: %v", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, auth.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
	k2, err := auth.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("second start made a new key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left files behind: %v", entries)
	}
	if err := os.WriteFile(filepath.Join(dir, auth.KeyFile), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := auth.LoadOrCreateKey(dir); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestLoadOrCreateKeyConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	keys := make(chan ed25519.PrivateKey, 8)
	errc := make(chan error, 8)
	for range 8 {
		go func() {
			k, err := auth.LoadOrCreateKey(dir)
			keys <- k
			errc <- err
		}()
	}
	var first ed25519.PrivateKey
	for range 8 {
		k := <-keys
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = k
		} else if !first.Equal(k) {
			t.Fatal("concurrent first starts disagree on the key")
		}
	}
}

// A verified token is remembered until it expires; a token changed in any
// byte, or one that has expired since, is not taken from memory.
func TestVerifiedTokensAreRememberedOnlyWhileValid(t *testing.T) {
	s, priv := newSigner(t)
	v := auth.NewVerifier(s.Keys(), auth.Options{})
	ctx := context.Background()
	token := sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), claims())
	for range 3 {
		got, err := v.Verify(ctx, token)
		if err != nil || got.Subject != "user-1" {
			t.Fatalf("Verify = %+v, %v", got, err)
		}
		got.Roles = append(got.Roles, auth.RoleAdmin) // must not reach the remembered claims
	}
	if got, _ := v.Verify(ctx, token); got.HasRole(auth.RoleAdmin) {
		t.Fatal("a caller's change to the claims reached the remembered ones")
	}
	// Flip one character of the signature: a different token, verified afresh.
	b := []byte(token)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	if _, err := v.Verify(ctx, string(b)); err == nil {
		t.Fatal("a tampered token passed")
	}
	// A token about to expire (its leeway ends in 1–2 s: exp is whole
	// seconds) passes, and a little later it does not, though it passed
	// before.
	c := claims()
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(2*time.Second - auth.DefaultLeeway))
	late := sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), c)
	if _, err := v.Verify(ctx, late); err != nil {
		t.Fatalf("a token within its leeway: %v", err)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := v.Verify(ctx, late); err == nil {
		t.Fatal("an expired token passed")
	}
}

type revokedIDs map[string]bool

func (r revokedIDs) Revoked(id string) bool { return r[id] }

// TestRefusalsAreRecorded: a token refused for a reason other than its
// age — a header naming a key, a lifetime past the maximum, an altered
// signature, a revoked ID — is recorded (OnRefused), without the token;
// an expired one and a good one are not.
func TestRefusalsAreRecorded(t *testing.T) {
	s, priv := newSigner(t)
	var got []string
	v := auth.NewVerifier(s.Keys(), auth.Options{Revoked: revokedIDs{"gone": true},
		OnRefused: func(_ context.Context, err error) { got = append(got, err.Error()) }})
	long, expired, gone := claims(), claims(), claims()
	long.ExpiresAt = jwt.NewNumericDate(time.Now().Add(48 * time.Hour))
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	gone.ID = "gone"
	good := sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), claims())
	altered := good[:len(good)-2] + "AA"
	if altered == good {
		altered = good[:len(good)-2] + "BB"
	}
	refused := []string{
		signWith(t, priv, s.KeyID(), claims(), map[string]any{"jku": "http://127.0.0.1:1/keys"}),
		sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), long),
		altered,
		sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), gone),
	}
	for _, tok := range refused {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatalf("accepted %s", tok)
		}
	}
	for _, tok := range []string{good, sign(t, jwt.SigningMethodEdDSA, priv, s.KeyID(), expired)} {
		_, _ = v.Verify(context.Background(), tok)
	}
	if len(got) != len(refused) {
		t.Fatalf("%d refusals recorded, want %d: %q", len(got), len(refused), got)
	}
	for _, r := range got {
		for _, tok := range refused {
			if strings.Contains(r, tok) || strings.Contains(r, tok[strings.LastIndex(tok, ".")+1:]) {
				t.Fatalf("a record holds the token: %s", r)
			}
		}
	}
}
