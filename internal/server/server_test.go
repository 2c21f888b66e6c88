package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/server"
)

// client calls the API through the gateway, with token (an admin's,
// unless the test says otherwise) as its bearer token.
type client struct {
	t     *testing.T
	base  string
	token string
}

// The admin every test server bootstraps.
const (
	adminEmail    = "admin@agora.test"
	adminPassword = "admin-password-1"
	adminCreds    = adminEmail + ":" + adminPassword
)

func boot(t *testing.T) *client {
	t.Helper()
	c, _ := bootEdge(t, func(*server.Config) {})
	return c
}

// login returns an access token for email.
func (c *client) login(email, password string) string {
	c.t.Helper()
	r := c.do("POST", "/api/v1/auth/token", map[string]any{"email": email, "password": password}, "Authorization", "")
	if r.status != http.StatusOK {
		c.t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	return r.body["access_token"].(string)
}

// as returns a client calling with token ("" for none).
func (c *client) as(token string) *client {
	cc := *c
	cc.token = token
	return &cc
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (c *client) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func usd(n int64) map[string]any { return map[string]any{"amount": n, "currency": "USD"} }

func (c *client) open(owner string, initial int64) (string, response) {
	c.t.Helper()
	r := c.do("POST", "/api/v1/accounts", map[string]any{"owner_id": owner, "currency": "USD", "initial_balance": usd(initial)})
	if r.status != http.StatusCreated {
		c.t.Fatalf("open: %d %s", r.status, r.raw)
	}
	return r.body["id"].(string), r
}

func balance(r response) int64 {
	b := r.body["balance"].(map[string]any)
	return int64(b["amount"].(float64))
}

func (c *client) account(id string, minPos string) response {
	c.t.Helper()
	r := c.do("GET", "/api/v1/accounts/"+id, nil, "Agora-Min-Position", minPos)
	if r.status != http.StatusOK {
		c.t.Fatalf("get %s: %d %s", id, r.status, r.raw)
	}
	return r
}

func TestTour(t *testing.T) {
	c := boot(t)
	id, r := c.open("alice", 1000)
	if r.header.Get("Agora-Position") == "" || r.header.Get("Location") != "/api/v1/accounts/"+id {
		t.Fatalf("open headers: %v", r.header)
	}
	r = c.do("POST", "/api/v1/accounts/"+id+"/deposits", map[string]any{"amount": usd(500)})
	if r.status != 200 || balance(r) != 1500 {
		t.Fatalf("deposit: %d %s", r.status, r.raw)
	}
	r = c.do("POST", "/api/v1/accounts/"+id+"/withdrawals", map[string]any{"amount": 200})
	if r.status != 200 || balance(r) != 1300 {
		t.Fatalf("withdraw (bare integer): %d %s", r.status, r.raw)
	}
	pos := r.header.Get("Agora-Position")
	got := c.account(id, pos)
	if balance(got) != 1300 || got.body["status"] != "Active" || got.body["transaction_count"].(float64) != 3 || got.body["version"].(float64) != 3 || got.body["owner_id"] != "alice" {
		t.Fatalf("read back: %s", got.raw)
	}
	if got.body["last_activity"] == "" {
		t.Fatalf("no last_activity: %s", got.raw)
	}
	ev := c.do("GET", "/api/v1/accounts/"+id+"/events?limit=2", nil)
	items := ev.body["items"].([]any)
	if ev.status != 200 || len(items) != 2 || ev.body["next_cursor"] == nil {
		t.Fatalf("events page 1: %d %s", ev.status, ev.raw)
	}
	ev = c.do("GET", "/api/v1/accounts/"+id+"/events?limit=2&cursor="+ev.body["next_cursor"].(string), nil)
	items = ev.body["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["type"] != "payments.MoneyWithdrawn" || ev.body["next_cursor"] != nil {
		t.Fatalf("events page 2: %s", ev.raw)
	}

	// Closing needs a zero balance.
	if r := c.do("POST", "/api/v1/accounts/"+id+"/close", nil); r.status != 409 || r.body["reason"] != "non_zero_balance" {
		t.Fatalf("close with money: %d %s", r.status, r.raw)
	}
	c.do("POST", "/api/v1/accounts/"+id+"/withdrawals", map[string]any{"amount": usd(1300)})
	r = c.do("POST", "/api/v1/accounts/"+id+"/close", nil)
	if r.status != 200 || r.body["status"] != "Closed" {
		t.Fatalf("close: %d %s", r.status, r.raw)
	}
	if r := c.do("POST", "/api/v1/accounts/"+id+"/deposits", map[string]any{"amount": usd(1)}); r.status != 409 || r.body["reason"] != "account_closed" {
		t.Fatalf("deposit to closed: %d %s", r.status, r.raw)
	}

	// Lists: by status, by minimum balance, paginated.
	rich, _ := c.open("bob", 50_000)
	_, last := c.open("carol", 10)
	p := last.header.Get("Agora-Position")
	l := c.do("GET", "/api/v1/accounts?status=Closed", nil, "Agora-Min-Position", p)
	if items := l.body["items"].([]any); l.status != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Fatalf("closed list: %s", l.raw)
	}
	l = c.do("GET", "/api/v1/accounts?min_balance=20000", nil, "Agora-Min-Position", p)
	if items := l.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != rich {
		t.Fatalf("rich list: %s", l.raw)
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		l = c.do("GET", "/api/v1/accounts?limit=2"+cursor, nil, "Agora-Min-Position", p)
		for _, it := range l.body["items"].([]any) {
			seen[it.(map[string]any)["id"].(string)] = true
		}
		nc, ok := l.body["next_cursor"].(string)
		if !ok {
			break
		}
		cursor = "&cursor=" + nc
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	// The three opened here and the merchant's, opened on first start.
	if len(seen) != 4 || !seen[server.DefaultMerchantAccountID] {
		t.Fatalf("paginated %d accounts (%v), want 4 with the merchant's", len(seen), seen)
	}
}

// TestHostileInput sends malformed and abusive requests: each gets a 4xx
// problem+json and changes nothing.
func TestHostileInput(t *testing.T) {
	c := boot(t)
	id, r := c.open("eve", 1000)
	pos := r.header.Get("Agora-Position")
	before := c.account(id, pos)
	dep := "/api/v1/accounts/" + id + "/deposits"
	wd := "/api/v1/accounts/" + id + "/withdrawals"
	big := `{"amount":{"amount":1,"currency":"USD"},"pad":"` + strings.Repeat("x", 2<<20) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
	}{
		{"malformed json", "POST", dep, `{"amount": `, 400},
		{"not json", "POST", dep, `amount=5`, 400},
		{"empty body", "POST", dep, ``, 400},
		{"array body", "POST", dep, `[1,2]`, 400},
		{"unknown field", "POST", dep, `{"amount":{"amount":5,"currency":"USD"},"admin":true}`, 400},
		{"unknown money field", "POST", dep, `{"amount":{"amount":5,"currency":"USD","fx":1}}`, 400},
		{"string amount", "POST", dep, `{"amount":"5"}`, 400},
		{"float amount", "POST", dep, `{"amount":{"amount":5.5,"currency":"USD"}}`, 400},
		{"exponent amount", "POST", dep, `{"amount":{"amount":1e3,"currency":"USD"}}`, 400},
		{"bool amount", "POST", dep, `{"amount":true}`, 400},
		{"null amount", "POST", dep, `{"amount":null}`, 400},
		{"missing amount", "POST", dep, `{}`, 400},
		{"negative amount", "POST", dep, `{"amount":{"amount":-5,"currency":"USD"}}`, 422},
		{"zero amount", "POST", dep, `{"amount":{"amount":0,"currency":"USD"}}`, 422},
		{"negative withdrawal", "POST", wd, `{"amount":-5}`, 422},
		{"overflowing literal", "POST", dep, `{"amount":{"amount":99999999999999999999,"currency":"USD"}}`, 400},
		{"overflowing balance", "POST", dep, `{"amount":{"amount":9223372036854775807,"currency":"USD"}}`, 422},
		{"unknown currency", "POST", dep, `{"amount":{"amount":5,"currency":"XYZ"}}`, 400},
		{"lower-case currency", "POST", dep, `{"amount":{"amount":5,"currency":"usd"}}`, 400},
		{"other currency", "POST", dep, `{"amount":{"amount":5,"currency":"EUR"}}`, 422},
		{"trailing data", "POST", dep, `{"amount":5} {"amount":5}`, 400},
		{"2 MiB body", "POST", dep, big, 413},
		{"overdraw", "POST", wd, `{"amount":{"amount":1001,"currency":"USD"}}`, 409},
		{"unknown account", "POST", "/api/v1/accounts/nope/deposits", `{"amount":{"amount":5,"currency":"USD"}}`, 404},
		{"open: no owner", "POST", "/api/v1/accounts", `{"currency":"USD"}`, 400},
		{"open: bad currency", "POST", "/api/v1/accounts", `{"owner_id":"x","currency":"DOLLARS"}`, 400},
		{"open: negative initial", "POST", "/api/v1/accounts", `{"owner_id":"x","currency":"USD","initial_balance":{"amount":-1,"currency":"USD"}}`, 422},
		{"open: mixed currencies", "POST", "/api/v1/accounts", `{"owner_id":"x","currency":"USD","initial_balance":{"amount":1,"currency":"EUR"}}`, 422},
		{"open: existing id", "POST", "/api/v1/accounts", `{"id":"` + id + `","owner_id":"x","currency":"USD"}`, 409},
		{"open: wrong type", "POST", "/api/v1/accounts", `{"owner_id":7,"currency":"USD"}`, 400},
		{"list: bad limit", "GET", "/api/v1/accounts?limit=0", nil, 400},
		{"list: huge limit", "GET", "/api/v1/accounts?limit=501", nil, 400},
		{"list: bad status", "GET", "/api/v1/accounts?status=Frozen", nil, 400},
		{"list: bad min_balance", "GET", "/api/v1/accounts?min_balance=lots", nil, 400},
		{"list: bad cursor", "GET", "/api/v1/accounts?cursor=notacursor", nil, 400},
		{"list: unknown param", "GET", "/api/v1/accounts?sort=balance", nil, 400},
		{"wrong method", "DELETE", "/api/v1/accounts/" + id, nil, 405},
		{"unknown route", "GET", "/api/v1/nothing", nil, 404},
	}
	for _, tc := range cases {
		r := c.do(tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, r.status, tc.status, r.raw)
			continue
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
		if r.body["status"].(float64) != float64(tc.status) || r.body["title"] == "" || r.body["type"] == "" {
			t.Errorf("%s: problem body %s", tc.name, r.raw)
		}
		if r.header.Get("Agora-Position") != "" {
			t.Errorf("%s: a refused request reports a write position", tc.name)
		}
	}
	// Wrong content type is refused too.
	req, _ := http.NewRequest("POST", c.base+dep, strings.NewReader(`{"amount":5}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d", res.StatusCode)
	}
	// Nothing changed: same balance, same version, no new event.
	after := c.account(id, pos)
	if balance(after) != balance(before) || after.body["version"] != before.body["version"] {
		t.Fatalf("state changed: before %s after %s", before.raw, after.raw)
	}
	ev := c.do("GET", "/api/v1/accounts/"+id+"/events", nil)
	if n := len(ev.body["items"].([]any)); n != 1 {
		t.Fatalf("account has %d events after hostile input, want 1", n)
	}
}

func TestOperations(t *testing.T) {
	c := boot(t)
	c.open("grace", 1)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := c.do("GET", p, nil); r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.raw)
		}
	}
	r := c.do("GET", "/metrics", nil)
	for _, m := range []string{"agora_eventstore_events_appended_total", "agora_eventstore_commit_seconds", "agora_eventstore_batch_events", "agora_projection_lag_events", "agora_http_requests_total"} {
		if !bytes.Contains(r.raw, []byte(m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if r := c.do("GET", "/healthz", nil, "X-Request-Id", "abc-123"); r.header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("request id not echoed: %v", r.header)
	}
}

// TestMalformedMinPositionIsRefused sends a malformed Agora-Min-Position
// to every read of one resource or list, those served from a read model
// (which wait for it) and those served from the event log (which need
// not): each is 400 with a problem naming the header.
func TestMalformedMinPositionIsRefused(t *testing.T) {
	c := boot(t)
	id, _ := c.open("dora", 100)
	none := "0190aaaa-0000-7000-8000-000000000000"
	for _, path := range []string{
		"/api/v1/accounts", "/api/v1/accounts/" + id, "/api/v1/accounts/" + id + "/events",
		"/api/v1/orders", "/api/v1/orders/" + none, "/api/v1/sagas/" + none,
		"/api/v1/transfers/" + none, "/api/v1/shipments/" + none,
		"/api/v1/products", "/api/v1/products/" + none, "/api/v1/inventory/" + none,
	} {
		for _, bad := range []string{"abc", "-1", "ordering.", ".12", "Ordering.12", "99999999999999999999999"} {
			r := c.do("GET", path, nil, "Agora-Min-Position", bad)
			if r.status != http.StatusBadRequest || r.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(r.raw), "Agora-Min-Position") {
				t.Errorf("GET %s with Agora-Min-Position %q: %d %s %s", path, bad, r.status, r.header.Get("Content-Type"), r.raw)
			}
		}
	}
}
