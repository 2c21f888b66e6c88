package identity_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/platform/errs"
)

func TestNormalizeEmail(t *testing.T) {
	good := map[string]string{
		"Alice@Example.COM":         "alice@example.com",
		"  bob@example.com ":        "bob@example.com",
		"a.b+tag@sub.example.co.uk": "a.b+tag@sub.example.co.uk",
		"admin@localhost":           "admin@localhost",
		"merchant@demo.agora":       "merchant@demo.agora",
	}
	for in, want := range good {
		got, fe := identity.NormalizeEmail(in)
		if fe != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, fe, want)
		}
	}
	for _, bad := range []string{"", "   ", "plain", "@example.com", "a@", "a@@b.com", "a b@c.com", "Alice <a@b.com>",
		"a@b_c.com", "a@-b.com", "a@b..com", "ä@b.com", "a@b.com\nx", "a\x00@b.com", `"a"@b.com`,
		strings.Repeat("a", 65) + "@b.com", "a@" + strings.Repeat("b", 250) + ".com"} {
		if got, fe := identity.NormalizeEmail(bad); fe == nil || fe.Field != "email" {
			t.Errorf("NormalizeEmail(%q) accepted: %q", bad, got)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	for _, ok := range []string{"12345678", "pässwörd", strings.Repeat("x", identity.MaxPasswordBytes)} {
		if fe := identity.CheckPassword(ok); fe != nil {
			t.Errorf("%q refused: %v", ok, fe.Message)
		}
	}
	for _, bad := range []string{"", "1234567", "äöüäöüä", strings.Repeat("x", identity.MaxPasswordBytes+1)} {
		if fe := identity.CheckPassword(bad); fe == nil || fe.Field != "password" {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseRoles(t *testing.T) {
	rs, err := identity.ParseRoles([]string{"merchant", "admin", "merchant"})
	if err != nil || len(rs) != 2 || rs[0] != identity.Admin || rs[1] != identity.Merchant {
		t.Fatalf("ParseRoles = %v, %v", rs, err)
	}
	for _, bad := range [][]string{nil, {}, {"root"}, {"customer", "Admin"}, {""}} {
		if _, err := identity.ParseRoles(bad); errs.CodeOf(err) != errs.Invalid {
			t.Errorf("ParseRoles(%q) = %v", bad, err)
		}
	}
}

func TestNewUserValidate(t *testing.T) {
	n := identity.NewUser{Tenant: "demo", Email: " Ann@Example.com", Password: "long enough", Name: "Ann", Roles: []identity.Role{identity.Customer}}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	if n.Email != "ann@example.com" {
		t.Fatalf("email not normalised: %q", n.Email)
	}
	bad := identity.NewUser{Tenant: "Bad Tenant", Email: "nope", Password: "short", Name: "\x07", Roles: []identity.Role{"root"}}
	err := bad.Validate()
	var e *errs.Error
	if !errors.As(err, &e) || e.Code != errs.Invalid {
		t.Fatalf("err = %v", err)
	}
	fields := map[string]bool{}
	for _, f := range e.Fields {
		fields[f.Field] = true
	}
	for _, f := range []string{"tenant", "email", "password", "name", "roles"} {
		if !fields[f] {
			t.Errorf("field %s not reported: %+v", f, e.Fields)
		}
	}
	if strings.Contains(err.Error(), "short") {
		t.Fatal("the password leaked into the error")
	}
}

func TestHasher(t *testing.T) {
	ctx := context.Background()
	h := identity.NewHasher(identity.DefaultParams)
	start := time.Now()
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one hash with DefaultParams: %v", time.Since(start))
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(enc) {
		t.Fatalf("not a PHC argon2id string: %s", enc)
	}
	if ok, err := h.Verify(ctx, enc, "correct horse"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := h.Verify(ctx, enc, "correct horsE"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	enc2, _ := h.Hash(ctx, "correct horse")
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal: no salt?")
	}
	// Hashes made with other parameters still verify.
	cheap := identity.NewHasher(identity.Params{Memory: 64, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32})
	old, _ := cheap.Hash(ctx, "pw")
	if ok, err := h.Verify(ctx, old, "pw"); !ok || err != nil {
		t.Fatalf("old parameters: %v %v", ok, err)
	}
	parts := strings.Split(enc, "$")
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=19456,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=16$m=19456,t=1,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=99999999,t=1,p=1$" + parts[4] + "$" + parts[5], // would allocate ~95 GiB
		"$argon2id$v=19$m=19456,t=1000,p=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=19456,t=1,p=1,x=1$" + parts[4] + "$" + parts[5],
		"$argon2id$v=19$m=19456,t=1,p=1$!!!$" + parts[5],
		"$argon2id$v=19$m=19456,t=1,p=1$" + parts[4] + "$",
		enc + "$extra"} {
		if ok, err := h.Verify(ctx, bad, "correct horse"); ok || !errors.Is(err, identity.ErrBadHash) {
			t.Errorf("Verify(%q) = %v, %v", bad, ok, err)
		}
	}
}
