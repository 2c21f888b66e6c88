package web_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/web"
)

// TestBrowserSessions checks the session cookie's rules over HTTP: what
// logging in sets, what a cookie may do without and with its CSRF token,
// and logging out.
func TestBrowserSessions(t *testing.T) {
	srv, stop, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), SeedDemo: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	base := "http://" + srv.Addr()
	demo, _ := srv.Demo()
	do := func(method, path, body string, header ...string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(raw, &out)
		return res, out
	}

	// A bad password is identity's problem, and sets nothing.
	res, body := do("POST", "/api/v1/auth/session", `{"email":"`+demo.CustomerEmail+`","password":"wrong"}`)
	if res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("bad password: %d %v cookies %v", res.StatusCode, body, res.Cookies())
	}
	if body["instance"] != "/api/v1/auth/session" || body["request_id"] != res.Header.Get("X-Request-Id") {
		t.Errorf("the login's problem names %v and request %v, want this request (%s)", body["instance"], body["request_id"], res.Header.Get("X-Request-Id"))
	}
	res, body = do("POST", "/api/v1/auth/session", `{"email":"`+demo.CustomerEmail+`","password":"`+demo.CustomerPassword+`"}`)
	if res.StatusCode != http.StatusOK || body["access_token"] != nil || body["csrf_token"] == "" {
		t.Fatalf("login: %d %v (the token stays in the cookie)", res.StatusCode, body)
	}
	var session, csrf *http.Cookie
	for _, c := range res.Cookies() {
		switch c.Name {
		case "agora_session":
			session = c
		case "agora_csrf":
			csrf = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.MaxAge <= 0 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, a lifetime", session)
	}
	if csrf == nil || csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode || csrf.Value != body["csrf_token"] {
		t.Fatalf("CSRF cookie %+v: want readable, SameSite=Strict, the answer's token", csrf)
	}
	cookie := "agora_session=" + session.Value

	// Reads need the cookie only.
	if res, me := do("GET", "/api/v1/me", "", "Cookie", cookie); res.StatusCode != http.StatusOK || me["email"] != demo.CustomerEmail {
		t.Fatalf("GET /me with the cookie: %d %v", res.StatusCode, me)
	}
	// A write with the cookie and no CSRF token is refused and changes
	// nothing; a wrong token too; the right one goes through.
	deposit := `{"amount":{"amount":100,"currency":"USD"}}`
	path := "/api/v1/accounts/" + demo.CustomerAccountID + "/deposits"
	for _, h := range [][]string{{"Cookie", cookie}, {"Cookie", cookie, "X-CSRF-Token", "forged"}} {
		res, p := do("POST", path, deposit, h...)
		if res.StatusCode != http.StatusForbidden || p["reason"] != "csrf_token_invalid" {
			t.Fatalf("cookie write %v: %d %v, want 403 csrf_token_invalid", h[2:], res.StatusCode, p)
		}
	}
	// The account's stream (read from the event store, not a read model)
	// counts what was written.
	events := func() int {
		_, page := do("GET", "/api/v1/accounts/"+demo.CustomerAccountID+"/events?limit=500", "", "Cookie", cookie)
		items, _ := page["items"].([]any)
		return len(items)
	}
	before := events()
	wrote, p := do("POST", path, deposit, "Cookie", cookie, "X-CSRF-Token", csrf.Value)
	if wrote.StatusCode != http.StatusOK || wrote.Header.Get("Agora-Position") == "" {
		t.Fatalf("cookie write with its CSRF token: %d %v", wrote.StatusCode, p)
	}
	if got := events(); got != before+1 {
		t.Fatalf("the account's events went from %d to %d: want exactly the one deposit with the token", before, got)
	}
	// A bearer token is judged alone: no CSRF token needed.
	tokRes, tok := do("POST", "/api/v1/auth/token", `{"email":"`+demo.CustomerEmail+`","password":"`+demo.CustomerPassword+`"}`)
	if tokRes.StatusCode != http.StatusOK {
		t.Fatal(tok)
	}
	if res, p := do("POST", path, deposit, "Authorization", "Bearer "+tok["access_token"].(string)); res.StatusCode != http.StatusOK {
		t.Fatalf("bearer write: %d %v", res.StatusCode, p)
	}
	// Logging out expires both cookies.
	res, _ = do("DELETE", "/api/v1/auth/session", "", "Cookie", cookie)
	if res.StatusCode != http.StatusOK || len(res.Cookies()) != 2 {
		t.Fatalf("logout: %d %v", res.StatusCode, res.Cookies())
	}
	for _, c := range res.Cookies() {
		if c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("logout left cookie %+v", c)
		}
	}
	// ... and revokes the session's token: a copy of the cookie is refused.
	if res, p := do("POST", path, deposit, "Cookie", cookie, "X-CSRF-Token", csrf.Value); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a copy of the cookie after logout: %d %v", res.StatusCode, p)
	}
}

// TestPagesCarryTheirPolicy checks the front end's headers: the page and
// its assets come with the Content-Security-Policy (no inline script),
// unknown assets are 404 problems, and an unchanged asset is a 304.
func TestPagesCarryTheirPolicy(t *testing.T) {
	h := web.Handler()
	for _, path := range []string{"/", "/assets/js/app.js", "/assets/app.css", "/assets/vendor/uplot/uPlot.esm.js"} {
		rec := serve(h, "GET", path, "")
		if rec.code != http.StatusOK || rec.header.Get("Content-Security-Policy") != web.CSP || rec.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d, CSP %q", path, rec.code, rec.header.Get("Content-Security-Policy"))
		}
		if rec.code == http.StatusOK {
			if again := serve(h, "GET", path, rec.header.Get("ETag")); again.code != http.StatusNotModified {
				t.Errorf("GET %s with its ETag: %d, want 304", path, again.code)
			}
		}
	}
	if !strings.Contains(web.CSP, "script-src 'self'") || strings.Contains(web.CSP, "unsafe-inline") {
		t.Errorf("CSP %q allows inline script", web.CSP)
	}
	page := serve(h, "GET", "/", "").body
	if strings.Contains(page, "<script>") || strings.Contains(page, "onclick=") || strings.Contains(page, "onload=") {
		t.Error("the page holds inline script")
	}
	for _, path := range []string{"/assets/nope.js", "/assets/index.html", "/web.go"} {
		if rec := serve(h, "GET", path, ""); rec.code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.code)
		}
	}
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func serve(h http.Handler, method, path, etag string) answer {
	req := httptest.NewRequest(method, path, nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
}
