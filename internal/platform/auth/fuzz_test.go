package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/auth"
)

// fuzzTokens returns a verifier and tokens its signer issued.
func fuzzTokens(f *testing.F) (*auth.Verifier, []string) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s := auth.NewSigner(key, auth.Options{})
	var toks []string
	for _, c := range []auth.Claims{
		{Tenant: "demo", Roles: []string{auth.RoleCustomer}, Email: "ann@example.com"},
		{Tenant: "demo", Roles: []string{auth.RoleAdmin, auth.RoleMerchant}},
		{Tenant: "acme"},
	} {
		c.Subject = "user-" + c.Tenant
		tok, err := s.Issue(c, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		toks = append(toks, tok)
	}
	return auth.NewVerifier(s.Keys(), auth.Options{}), toks
}

// FuzzVerify verifies arbitrary strings: never a panic, never an error
// that is not a 401's, and nothing accepted but a token the signer issued.
func FuzzVerify(f *testing.F) {
	v, toks := fuzzTokens(f)
	issued := map[string]bool{}
	for _, tok := range toks {
		issued[tok] = true
		f.Add(tok)
		f.Add(tok + ".")
		f.Add(strings.ToUpper(tok))
		f.Add(" " + tok)
	}
	head := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		"", "a.b.c", "...", "not.a.token", "Bearer x",
		head([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + head([]byte(`{"sub":"x","tenant":"demo"}`)) + ".",
		head([]byte(`{"alg":"EdDSA","kid":"x","jku":"http://127.0.0.1/"}`)) + "." + head([]byte(`{}`)) + ".AAAA",
		head([]byte(`{"alg":"HS256"}`)) + "." + head([]byte(`{"exp":1e309}`)) + ".sig",
		head([]byte(`{"alg":"EdDSA","kid":{"a":1}}`)) + "." + head([]byte(`[]`)) + ".",
		strings.Repeat("A", auth.MaxTokenBytes+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(context.Background(), token)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) && !errors.Is(err, auth.ErrNoToken) {
				t.Fatalf("Verify(%q): %v, not a 401", token, err)
			}
			return
		}
		if !issued[token] || c == nil {
			t.Fatalf("Verify accepted a token the signer did not issue: %q (%+v)", token, c)
		}
	})
}

// FuzzVerifyMutated changes an issued token (cut bytes at pos, insert
// others): the verifier must refuse it unless it is byte for byte the
// token issued.
func FuzzVerifyMutated(f *testing.F) {
	v, toks := fuzzTokens(f)
	tok := toks[0]
	dot := strings.IndexByte(tok, '.')
	for _, s := range []struct {
		pos, cut uint16
		insert   string
	}{
		{0, 0, ""}, {0, 1, "e"}, {uint16(dot), 1, ""}, {uint16(dot + 1), 0, "x"}, {uint16(len(tok) / 2), 3, "abc"},
		{uint16(len(tok) - 10), 0, "="}, {uint16(len(tok)), 0, "=="}, {uint16(len(tok) - 5), 5, ""}, {10, 2, "+/"},
	} {
		f.Add(s.pos, s.cut, s.insert)
	}
	f.Fuzz(func(t *testing.T, pos, cut uint16, insert string) {
		p := min(int(pos), len(tok))
		q := min(p+int(cut), len(tok))
		m := tok[:p] + insert + tok[q:]
		if _, err := v.Verify(context.Background(), m); err == nil && m != tok {
			t.Fatalf("Verify accepted a changed token:\n  issued %q\n  got    %q", tok, m)
		}
	})
}

// TestVerifierRefusesOtherSpellings: a token is accepted only as issued,
// not with line breaks in it (base64 skips them) nor with the unused low
// bits of its signature's last character set (found by
// FuzzVerifyMutated).
func TestVerifierRefusesOtherSpellings(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := auth.NewSigner(key, auth.Options{})
	c := auth.Claims{Tenant: "demo"}
	c.Subject = "u-1"
	tok, err := s.Issue(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := auth.NewVerifier(s.Keys(), auth.Options{})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	// A 64-byte signature is 86 characters: the last one carries 2 bits.
	other := tok[:len(tok)-1] + string(alphabet[last^1])
	dot := strings.LastIndexByte(tok, '.')
	for _, m := range []string{other, tok + "\r", tok + "\n", tok[:dot+5] + "\r\n" + tok[dot+5:], tok + "="} {
		if _, err := v.Verify(context.Background(), m); !errors.Is(err, auth.ErrInvalidToken) {
			t.Errorf("Verify(%q) = %v, want ErrInvalidToken", m, err)
		}
	}
}
