package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/identity/store"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/testenv"
)

// accounts is a fake payments context.
type accounts struct {
	mu     sync.Mutex
	opened map[string]string // user → account
	fail   error
}

func (a *accounts) OpenFor(_ context.Context, tenant, userID string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return "", a.fail
	}
	if a.opened == nil {
		a.opened = map[string]string{}
	}
	a.opened[userID] = "acct-" + tenant + "-" + userID
	return a.opened[userID], nil
}

func (a *accounts) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.opened)
}

type env struct {
	svc      *app.Service
	repo     *store.Store
	es       eventstore.Store
	accounts *accounts
	verifier *auth.Verifier
}

func setup(t *testing.T, es eventstore.Store, db *sql.DB) *env {
	t.Helper()
	repo, err := store.Open(context.Background(), db, strings.HasSuffix(t.Name(), "/postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := auth.NewSigner(key, auth.Options{})
	acc := &accounts{}
	svc, err := app.New(app.Config{Repo: repo, Signer: signer, Audit: audit.New(es), Accounts: acc})
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, repo: repo, es: es, accounts: acc, verifier: auth.NewVerifier(signer.Keys(), auth.Options{})}
}

// auditLog returns tenant's audit events and fails t if any mentions one
// of secrets.
func (e *env) auditLog(t *testing.T, tenant string, secrets ...string) []eventstore.Record {
	t.Helper()
	recs, err := e.es.ReadStream(context.Background(), audit.Stream(tenant), eventstore.StreamRead{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		meta, _ := json.Marshal(r.Metadata)
		for _, s := range secrets {
			if strings.Contains(string(r.Data), s) || strings.Contains(string(meta), s) {
				t.Fatalf("audit event %s holds a secret: %s %s", r.Type, r.Data, meta)
			}
		}
	}
	return recs
}

func data(t *testing.T, r eventstore.Record) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRegisterLoginAudit(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, es eventstore.Store, db *sql.DB) {
		e := setup(t, es, db)
		ctx := identity.WithOrigin(context.Background(), identity.Origin{Addr: "203.0.113.7", UserAgent: "test/1", RequestID: "req-1"})
		const pw = "s3cret-Passw0rd"
		u, err := e.svc.Register(ctx, "", "  Ann@Example.com", pw, "Ann")
		if err != nil {
			t.Fatal(err)
		}
		if u.Tenant != "demo" || u.Email != "ann@example.com" || len(u.Roles) != 1 || u.Roles[0] != identity.Customer ||
			u.AccountID != "acct-demo-"+u.ID || strings.Contains(u.PasswordHash, pw) {
			t.Fatalf("registered %+v", u)
		}
		if got, err := e.svc.Get(ctx, u.ID); err != nil || got.AccountID != u.AccountID {
			t.Fatalf("Get = %+v, %v", got, err)
		}

		tok, err := e.svc.Login(ctx, "demo", "ANN@example.com", pw)
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.verifier.Verify(ctx, tok.AccessToken)
		if err != nil || c.UserID() != u.ID || c.Tenant != "demo" || !c.HasRole("customer") || c.Email != u.Email {
			t.Fatalf("token claims %+v, %v", c, err)
		}
		if tok.ExpiresIn != auth.DefaultTTL {
			t.Fatalf("expires in %v", tok.ExpiresIn)
		}

		// Wrong password and unknown user fail alike.
		_, errWrong := e.svc.Login(ctx, "", "ann@example.com", "wrong-password")
		_, errUnknown := e.svc.Login(ctx, "", "bob@example.com", "wrong-password")
		_, errTenant := e.svc.Login(ctx, "nowhere", "ann@example.com", pw)
		_, errMalformed := e.svc.Login(ctx, "", "not an email", pw)
		for _, err := range []error{errWrong, errUnknown, errTenant, errMalformed} {
			if err != identity.ErrBadCredentials {
				t.Fatalf("failed login: %v", err)
			}
		}

		recs := e.auditLog(t, "demo", pw, "wrong-password", tok.AccessToken)
		var types []string
		for _, r := range recs {
			types = append(types, r.Type)
		}
		want := []string{identity.AuditUserRegistered, identity.AuditLoginSucceeded, identity.AuditLoginFailed, identity.AuditLoginFailed, identity.AuditLoginFailed}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Fatalf("audit types %v, want %v", types, want)
		}
		ok := data(t, recs[1])
		if ok["who"] != u.ID || ok["what"] != "login" || ok["from"] != "203.0.113.7" || ok["user_agent"] != "test/1" || ok["when"] == nil {
			t.Fatalf("LoginSucceeded data %v", ok)
		}
		if recs[1].Metadata.Tenant != "demo" || recs[1].Metadata.CorrelationID != "req-1" {
			t.Fatalf("metadata %+v", recs[1].Metadata)
		}
		for i, want := range []struct{ who, reason string }{
			{u.ID, identity.ReasonWrongPassword},
			{"bob@example.com", identity.ReasonUnknownUser},
			{"not an email", identity.ReasonMalformed},
		} {
			d := data(t, recs[2+i])
			if d["who"] != want.who || d["reason"] != want.reason {
				t.Fatalf("LoginFailed #%d data %v, want %+v", i, d, want)
			}
		}
		unknown := e.auditLog(t, identity.UnknownTenant, pw)
		if len(unknown) != 1 || data(t, unknown[0])["reason"] != identity.ReasonUnknownTenant {
			t.Fatalf("unknown-tenant audit %v", unknown)
		}
	})
}

func TestDuplicateRegistrationChangesNothing(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, es eventstore.Store, db *sql.DB) {
		e := setup(t, es, db)
		ctx := context.Background()
		first, err := e.svc.Register(ctx, "demo", "ann@example.com", "first-password", "Ann")
		if err != nil {
			t.Fatal(err)
		}
		events := len(e.auditLog(t, "demo"))
		_, err = e.svc.Register(ctx, "demo", "ANN@example.com", "second-password", "Impostor")
		if !errors.Is(err, identity.ErrEmailTaken) || errs.CodeOf(err) != errs.Conflict {
			t.Fatalf("duplicate: %v", err)
		}
		if e.accounts.count() != 1 || len(e.auditLog(t, "demo")) != events {
			t.Fatal("a refused registration opened an account or wrote an audit event")
		}
		got, _ := e.svc.Get(ctx, first.ID)
		if got.Name != "Ann" || got.PasswordHash != first.PasswordHash {
			t.Fatalf("the first user changed: %+v", got)
		}
		if _, err := e.svc.Login(ctx, "", "ann@example.com", "second-password"); err == nil {
			t.Fatal("the second password logs in")
		}
	})
}

func TestRegisterValidation(t *testing.T) {
	store, db := testenv.SQLite(t)
	e := setup(t, store, db)
	ctx := context.Background()
	_, err := e.svc.Register(ctx, "demo", "bad", "short", "")
	var ee *errs.Error
	if !errors.As(err, &ee) || ee.Code != errs.Invalid || len(ee.Fields) != 3 {
		t.Fatalf("err = %v (%+v)", err, ee)
	}
	if _, err := e.svc.Register(ctx, "acme", "ann@example.com", "long enough", "Ann"); !errors.Is(err, app.ErrUnknownTenant) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if e.accounts.count() != 0 {
		t.Fatal("an account was opened")
	}
}

func TestAccountFailureUndoesRegistration(t *testing.T) {
	store, db := testenv.SQLite(t)
	e := setup(t, store, db)
	ctx := context.Background()
	e.accounts.fail = errors.New("payments down")
	if _, err := e.svc.Register(ctx, "", "ann@example.com", "long enough", "Ann"); err == nil {
		t.Fatal("registered without an account")
	}
	if _, err := e.repo.UserByEmail(ctx, "demo", "ann@example.com"); !errors.Is(err, identity.ErrUserNotFound) {
		t.Fatalf("the user stayed: %v", err)
	}
	e.accounts.fail = nil
	if u, err := e.svc.Register(ctx, "", "ann@example.com", "long enough", "Ann"); err != nil || u.AccountID == "" {
		t.Fatalf("retry: %+v, %v", u, err)
	}
}

func TestCreateUserAndSetRoles(t *testing.T) {
	store, db := testenv.SQLite(t)
	e := setup(t, store, db)
	ctx := identity.WithOrigin(context.Background(), identity.Origin{Actor: "admin-1"})
	m, err := e.svc.CreateUser(ctx, "", "shop@example.com", "long enough", "Shop", []identity.Role{identity.Merchant})
	if err != nil || m.AccountID != "" || !m.HasRole(identity.Merchant) {
		t.Fatalf("merchant %+v, %v", m, err)
	}
	if _, err := e.svc.CreateUser(ctx, "", "x@example.com", "long enough", "X", []identity.Role{"root"}); errs.CodeOf(err) != errs.Invalid {
		t.Fatalf("bad role: %v", err)
	}
	u, err := e.svc.SetRoles(ctx, m.ID, []identity.Role{identity.Merchant, identity.Admin})
	if err != nil || !u.HasRole(identity.Admin) {
		t.Fatalf("SetRoles %+v, %v", u, err)
	}
	if _, err := e.svc.SetRoles(ctx, m.ID, nil); errs.CodeOf(err) != errs.Invalid {
		t.Fatalf("no roles: %v", err)
	}
	recs := e.auditLog(t, "demo", "long enough")
	if len(recs) != 2 || recs[0].Type != identity.AuditUserCreated || recs[1].Type != identity.AuditRolesChanged {
		t.Fatalf("audit %v", recs)
	}
	d := data(t, recs[1])
	if d["who"] != "admin-1" || d["subject"] != m.ID || len(d["roles"].([]any)) != 2 {
		t.Fatalf("RolesChanged %v", d)
	}
}

func TestBootstrapAdminIdempotent(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, es eventstore.Store, db *sql.DB) {
		e := setup(t, es, db)
		ctx := context.Background()
		const spec = "Root@Example.com:correct:horse:battery"
		u, created, err := e.svc.EnsureBootstrapAdmin(ctx, spec)
		if err != nil || !created || !u.HasRole(identity.Admin) || u.Email != "root@example.com" || u.Tenant != "demo" {
			t.Fatalf("bootstrap: %+v %v %v", u, created, err)
		}
		u2, created, err := e.svc.EnsureBootstrapAdmin(ctx, spec)
		if err != nil || created || u2.ID != u.ID {
			t.Fatalf("second bootstrap: %+v %v %v", u2, created, err)
		}
		if _, err := e.svc.Login(ctx, "", "root@example.com", "correct:horse:battery"); err != nil {
			t.Fatalf("admin login: %v", err)
		}
		recs := e.auditLog(t, "demo", "correct:horse:battery")
		if len(recs) != 2 || recs[0].Type != identity.AuditAdminBootstrapped {
			t.Fatalf("audit %v", recs)
		}
		for _, bad := range []string{"", "no-colon", "bad email:long enough", "a@example.com:short"} {
			if _, _, err := e.svc.EnsureBootstrapAdmin(ctx, bad); errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("%q: %v", bad, err)
			}
		}
		// An address a customer registered first is not promoted.
		if _, err := e.svc.Register(ctx, "", "taken@example.com", "attacker-pw", "Eve"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.svc.EnsureBootstrapAdmin(ctx, "taken@example.com:admin-password"); !errors.Is(err, app.ErrBootstrapConflict) {
			t.Fatalf("promoted an existing customer: %v", err)
		}
	})
}

func TestSeedDemoIdempotent(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, es eventstore.Store, db *sql.DB) {
		e := setup(t, es, db)
		ctx := context.Background()
		d, err := e.svc.SeedDemo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d.Tenant != "demo" || !d.Created() || !d.Merchant.Created || !d.Customer.Created ||
			d.Customer.AccountID == "" || d.Merchant.AccountID != "" || d.Merchant.Email != app.DemoMerchantEmail {
			t.Fatalf("seeded %+v", d)
		}
		for _, su := range []app.SeededUser{d.Merchant, d.Customer} {
			tok, err := e.svc.Login(ctx, d.Tenant, su.Email, su.Password)
			if err != nil {
				t.Fatalf("demo login %s: %v", su.Email, err)
			}
			if tok.User.ID != su.ID {
				t.Fatalf("logged in as %s, want %s", tok.User.ID, su.ID)
			}
		}
		events := len(e.auditLog(t, "demo"))
		again, err := e.svc.SeedDemo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if again.Created() || again.Merchant.ID != d.Merchant.ID || again.Customer.ID != d.Customer.ID ||
			again.Customer.AccountID != d.Customer.AccountID {
			t.Fatalf("second seed %+v, first %+v", again, d)
		}
		if e.accounts.count() != 1 || len(e.auditLog(t, "demo")) != events {
			t.Fatal("the second seed opened an account or wrote audit events")
		}
	})
}
