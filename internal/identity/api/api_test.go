package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
	"github.com/agora-commerce/agora/internal/identity/api"
	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/identity/store"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/testenv"
)

type accounts struct{}

func (accounts) OpenFor(_ context.Context, _, userID string) (string, error) {
	return "acct-" + userID, nil
}

type server struct {
	t    *testing.T
	url  string
	repo *store.Store
	es   eventstore.Store
}

func start(t *testing.T, es eventstore.Store, db *sql.DB) *server {
	t.Helper()
	repo, err := store.Open(context.Background(), db, strings.HasSuffix(t.Name(), "/postgres"))
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := auth.NewSigner(key, auth.Options{})
	svc, err := app.New(app.Config{Repo: repo, Signer: signer, Audit: audit.New(es), Accounts: accounts{}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.New(svc, signer, auth.NewVerifier(signer.Keys(), auth.Options{}), api.Options{}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &server{t: t, url: srv.URL, repo: repo, es: es}
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (s *server) do(method, path, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r response) problem(t *testing.T, status int) {
	t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" || r.body["status"] != float64(status) {
		t.Fatalf("got %d %q %s, want %d problem+json", r.status, r.header.Get("Content-Type"), r.raw, status)
	}
}

func TestRegisterLoginMe(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, es eventstore.Store, db *sql.DB) {
		s := start(t, es, db)
		r := s.do("POST", "/api/v1/customers", `{"email":"Ann@Example.com","password":"correct horse","name":"Ann"}`)
		if r.status != http.StatusCreated || r.body["email"] != "ann@example.com" || r.body["id"] == "" ||
			r.body["account_id"] != "acct-"+r.body["id"].(string) || len(r.body) != 3 {
			t.Fatalf("register: %d %s", r.status, r.raw)
		}
		id := r.body["id"].(string)

		r = s.do("POST", "/api/v1/auth/token", `{"email":"ann@example.com","password":"correct horse","tenant":"demo"}`)
		if r.status != http.StatusOK || r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(900) ||
			r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("token: %d %v %s", r.status, r.header, r.raw)
		}
		token := r.body["access_token"].(string)

		r = s.do("GET", "/api/v1/me", "", "Authorization", "Bearer "+token)
		if r.status != http.StatusOK || r.body["id"] != id || r.body["email"] != "ann@example.com" || r.body["name"] != "Ann" ||
			r.body["tenant"] != "demo" || r.body["account_id"] != "acct-"+id {
			t.Fatalf("me: %d %s", r.status, r.raw)
		}
		if roles, _ := r.body["roles"].([]any); len(roles) != 1 || roles[0] != "customer" {
			t.Fatalf("me roles: %s", r.raw)
		}

		for _, h := range []string{"", "Bearer", "Bearer x.y.z", "Basic " + token, "Bearer " + token + "x"} {
			r := s.do("GET", "/api/v1/me", "", "Authorization", h)
			r.problem(t, http.StatusUnauthorized)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%q: no challenge", h)
			}
		}

		// The token's user is deleted: the token no longer works.
		if err := s.repo.DeleteUser(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		s.do("GET", "/api/v1/me", "", "Authorization", "Bearer "+token).problem(t, http.StatusUnauthorized)
	})
}

func TestBadCredentialsLookAlike(t *testing.T) {
	store, db := testenv.SQLite(t)
	s := start(t, store, db)
	if r := s.do("POST", "/api/v1/customers", `{"email":"ann@example.com","password":"correct horse","name":"Ann"}`); r.status != 201 {
		t.Fatalf("register: %s", r.raw)
	}
	wrong := s.do("POST", "/api/v1/auth/token", `{"email":"ann@example.com","password":"wrong horse"}`)
	unknown := s.do("POST", "/api/v1/auth/token", `{"email":"bob@example.com","password":"wrong horse"}`)
	tenant := s.do("POST", "/api/v1/auth/token", `{"email":"ann@example.com","password":"correct horse","tenant":"acme"}`)
	wrong.problem(t, http.StatusUnauthorized)
	for _, r := range []response{unknown, tenant} {
		r.problem(t, http.StatusUnauthorized)
		if !bytes.Equal(r.raw, wrong.raw) || r.header.Get("WWW-Authenticate") != wrong.header.Get("WWW-Authenticate") {
			t.Fatalf("answers differ:\n%s\n%s", wrong.raw, r.raw)
		}
	}
	if strings.Contains(string(wrong.raw), "horse") {
		t.Fatal("the password was echoed")
	}
	// The audit log has the truth, and no password.
	recs, err := s.es.ReadStream(context.Background(), audit.Stream("demo"), eventstore.StreamRead{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := ""
	for _, rec := range recs {
		if strings.Contains(string(rec.Data), "horse") {
			t.Fatalf("password in audit event %s", rec.Data)
		}
		if rec.Type == identity.AuditLoginFailed {
			var d identity.AuditEvent
			_ = json.Unmarshal(rec.Data, &d)
			reasons += d.Reason + " "
			if d.From != "127.0.0.1" || !strings.HasPrefix(d.UserAgent, "Go-http-client") {
				t.Fatalf("origin not recorded: %s", rec.Data)
			}
		}
	}
	if reasons != "wrong_password unknown_user " {
		t.Fatalf("audit reasons %q", reasons)
	}
}

func TestDuplicateRegistration(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, es eventstore.Store, db *sql.DB) {
		s := start(t, es, db)
		first := s.do("POST", "/api/v1/customers", `{"email":"ann@example.com","password":"first password","name":"Ann"}`)
		if first.status != 201 {
			t.Fatalf("register: %s", first.raw)
		}
		dup := s.do("POST", "/api/v1/customers", `{"email":"ANN@example.com","password":"second password","name":"Eve"}`)
		dup.problem(t, http.StatusConflict)
		if dup.body["reason"] != "email_taken" {
			t.Fatalf("reason: %s", dup.raw)
		}
		u, err := s.repo.UserByEmail(context.Background(), "demo", "ann@example.com")
		if err != nil || u.ID != first.body["id"] || u.Name != "Ann" {
			t.Fatalf("user after duplicate: %+v, %v", u, err)
		}
		if r := s.do("POST", "/api/v1/auth/token", `{"email":"ann@example.com","password":"second password"}`); r.status != 401 {
			t.Fatalf("the duplicate's password works: %d", r.status)
		}
		if r := s.do("POST", "/api/v1/auth/token", `{"email":"ann@example.com","password":"first password"}`); r.status != 200 {
			t.Fatalf("the original password fails: %d", r.status)
		}
	})
}

func TestHostileInput(t *testing.T) {
	store, db := testenv.SQLite(t)
	s := start(t, store, db)
	huge := `{"email":"big@example.com","password":"long enough","name":"` + strings.Repeat("x", 2<<20) + `"}`
	cases := []struct {
		name, path, body, contentType string
		status                        int
		fields                        []string
	}{
		{"malformed JSON", "/api/v1/customers", `{"email":"mal@example.com",`, "", 400, nil},
		{"not an object", "/api/v1/customers", `["mal@example.com"]`, "", 400, nil},
		{"unknown field", "/api/v1/customers", `{"email":"unk@example.com","password":"long enough","name":"U","roles":["admin"]}`, "", 400, []string{"roles"}},
		{"wrong type", "/api/v1/customers", `{"email":"typ@example.com","password":12345678,"name":"T"}`, "", 400, []string{"password"}},
		{"missing email", "/api/v1/customers", `{"password":"long enough","name":"M"}`, "", 400, []string{"email"}},
		{"bad email", "/api/v1/customers", `{"email":"not-an-email","password":"long enough","name":"B"}`, "", 400, []string{"email"}},
		{"short password", "/api/v1/customers", `{"email":"short@example.com","password":"short","name":"S"}`, "", 400, []string{"password"}},
		{"every field bad", "/api/v1/customers", `{"email":"","password":"","name":"","tenant":"Bad!"}`, "", 400, []string{"tenant", "email", "password", "name"}},
		{"unknown tenant", "/api/v1/customers", `{"email":"ten@example.com","password":"long enough","name":"T","tenant":"acme"}`, "", 422, []string{"tenant"}},
		{"2 MiB body", "/api/v1/customers", huge, "", 413, nil},
		{"not JSON", "/api/v1/customers", `{"email":"ct@example.com","password":"long enough","name":"C"}`, "text/plain", 415, nil},
		{"two values", "/api/v1/customers", `{"email":"two@example.com","password":"long enough","name":"T"} {}`, "", 400, nil},
		{"token: missing password", "/api/v1/auth/token", `{"email":"a@example.com"}`, "", 400, []string{"password"}},
		{"token: unknown field", "/api/v1/auth/token", `{"email":"a@example.com","password":"x","admin":true}`, "", 400, []string{"admin"}},
		{"token: 2 MiB body", "/api/v1/auth/token", `{"email":"a@example.com","password":"` + strings.Repeat("x", 2<<20) + `"}`, "", 413, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.contentType != "" {
				headers = []string{"Content-Type", c.contentType}
			}
			r := s.do("POST", c.path, c.body, headers...)
			r.problem(t, c.status)
			var got []string
			errsList, _ := r.body["errors"].([]any)
			for _, e := range errsList {
				got = append(got, e.(map[string]any)["field"].(string))
			}
			if strings.Join(got, ",") != strings.Join(c.fields, ",") {
				t.Fatalf("fields %v, want %v: %s", got, c.fields, r.raw)
			}
		})
	}
	// Nothing was created.
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM identity_users`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d users created (%v)", n, err)
	}
}

func TestJWKS(t *testing.T) {
	store, db := testenv.SQLite(t)
	s := start(t, store, db)
	r := s.do("GET", "/.well-known/jwks.json", "")
	if r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "json") {
		t.Fatalf("jwks: %d %v", r.status, r.header)
	}
	kf, err := keyfunc.NewJWKSetJSON(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	s.do("POST", "/api/v1/customers", `{"email":"ann@example.com","password":"correct horse","name":"Ann"}`)
	tok := s.do("POST", "/api/v1/auth/token", `{"email":"ann@example.com","password":"correct horse"}`).body["access_token"].(string)
	var c auth.Claims
	if _, err := jwt.ParseWithClaims(tok, &c, kf.Keyfunc, jwt.WithValidMethods([]string{"EdDSA"})); err != nil || c.Tenant != "demo" {
		t.Fatalf("token not verifiable with the published JWKS: %v", err)
	}
}

func TestClientAddr(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:4711"
	r.Header.Add("X-Forwarded-For", "6.6.6.6, 198.51.100.1")
	r.Header.Add("X-Forwarded-For", "203.0.113.9")
	for hops, want := range map[int]string{0: "10.0.0.5", 1: "203.0.113.9", 2: "198.51.100.1", 3: "6.6.6.6", 4: "10.0.0.5"} {
		if got := api.ClientAddr(r, hops); got != want {
			t.Errorf("hops %d: %s, want %s", hops, got, want)
		}
	}
	r.Header.Set("X-Forwarded-For", "not-an-ip")
	if got := api.ClientAddr(r, 1); got != "10.0.0.5" {
		t.Errorf("forged header: %s", got)
	}
}
