package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/testenv/faults"
)

// TestIdempotencyKeysAreDurable: an Idempotency-Key's answer is kept in
// the owning context's database. A reply cut after the commit, then a
// retry, makes one effect; the retry is answered from the context's
// store after the whole process restarts (the gateway's cache gone); the
// service answers it to a caller that bypasses the gateway; another body
// with the key is a 422; another user's same key is theirs.
func TestIdempotencyKeysAreDurable(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: dir, BootstrapAdmin: adminCreds, Logger: testLogger()}
	srv, stop, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin := &client{t: t, base: "http://" + srv.Addr()}
	admin.token = admin.login(adminEmail, adminPassword)
	r := admin.do("POST", "/api/v1/customers", map[string]any{"email": "bo@agora.test", "password": "bo-password-1", "name": "Bo"})
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	bo := admin.as(admin.login("bo@agora.test", "bo-password-1"))
	acct := r.body["account_id"].(string)
	deposit := map[string]any{"amount": usd(250)}
	path := "/api/v1/accounts/" + acct + "/deposits"
	before := balance(admin.account(acct, ""))

	// Through a proxy that cuts every answer after 40 bytes: the deposit
	// commits, the client never reads its answer.
	cut := faults.New(t, "gateway", srv.Addr())
	if err := cut.CutAnswers(40); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(deposit)
	req, _ := http.NewRequest("POST", "http://"+cut.Addr()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin.token)
	req.Header.Set("Idempotency-Key", "deposit-1")
	if res, err := http.DefaultClient.Do(req); err == nil {
		raw, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		if rerr == nil {
			t.Fatalf("the answer came through the cut: %d %s", res.StatusCode, raw)
		}
	}
	cut.Heal()
	first := admin.do("POST", path, deposit, "Idempotency-Key", "deposit-1")
	if first.status != http.StatusCreated && first.status != http.StatusOK || first.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after the cut answer: %d %v %s", first.status, first.header, first.raw)
	}
	if got := balance(admin.account(acct, first.header.Get("Agora-Position"))); got != before+250 {
		t.Fatalf("balance %d after a cut deposit and its retry, want %d (one effect)", got, before+250)
	}

	// The whole process restarts: the gateway's cache is gone.
	stop()
	srv, stop, err = server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	admin.base, bo.base = "http://"+srv.Addr(), "http://"+srv.Addr()
	again := admin.do("POST", path, deposit, "Idempotency-Key", "deposit-1")
	if again.status != first.status || again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.raw, first.raw) {
		t.Fatalf("retry after a restart: %d %v %s, want the first answer %d %s", again.status, again.header, again.raw, first.status, first.raw)
	}
	// Called directly, the service answers from its own store.
	direct := &client{t: t, base: "http://" + srv.ServiceAddr("payments"), token: admin.token}
	if d := direct.do("POST", path, deposit, "Idempotency-Key", "deposit-1"); d.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(d.raw, first.raw) {
		t.Fatalf("the service called directly: %d %v %s", d.status, d.header, d.raw)
	}
	if other := admin.do("POST", path, map[string]any{"amount": usd(999)}, "Idempotency-Key", "deposit-1"); other.status != http.StatusUnprocessableEntity ||
		other.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("the key with another body: %d %s", other.status, other.raw)
	}
	// Bo's key is Bo's: the same request runs again for him.
	mine := bo.do("POST", path, deposit, "Idempotency-Key", "deposit-1")
	if mine.status != http.StatusCreated && mine.status != http.StatusOK ||
		mine.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another user's same key: %d %v %s", mine.status, mine.header, mine.raw)
	}
	if got := balance(admin.account(acct, mine.header.Get("Agora-Position"))); got != before+500 {
		t.Fatalf("balance %d, want %d: one deposit each for the admin's key and Bo's", got, before+500)
	}
}
