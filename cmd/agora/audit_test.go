package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore/sqlite"
)

// runAudit runs `agora audit` (this test binary) as its own process and
// returns its exit status and output.
func runAudit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"audit"}, args...)...)
	cmd.Env = append(os.Environ(), "AGORA_TEST_RUN_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestAuditCommand audits a serving platform from another process while
// it serves: exit status 0 after a checkout, then 1, naming the
// violation, once a read-model balance is changed behind its back.
func TestAuditCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	startProcess(t, addr, dir)
	base := "http://" + addr
	must := func(path string, body map[string]any, want int) map[string]any {
		t.Helper()
		res, out, err := post(base+path, body)
		if err != nil || res.StatusCode != want {
			t.Fatalf("%s: %v %v %v", path, res, out, err)
		}
		return out
	}
	prod := must("/api/v1/products", map[string]any{"sku": "AUDIT-1", "name": "Mug", "price": map[string]any{"amount": 1250, "currency": "USD"}}, http.StatusCreated)["id"].(string)
	must("/api/v1/inventory/"+prod+"/restock", map[string]any{"quantity": 3}, http.StatusOK)
	acct := must("/api/v1/accounts", map[string]any{"owner_id": "ann", "currency": "USD", "initial_balance": map[string]any{"amount": 5000, "currency": "USD"}}, http.StatusCreated)["id"].(string)
	order := must("/api/v1/orders", map[string]any{"customer_id": "ann", "payment_account_id": acct,
		"items":            []any{map[string]any{"product_id": prod, "quantity": 1}},
		"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}}, http.StatusAccepted)["id"].(string)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get(base + "/api/v1/orders/" + order)
		if err != nil {
			t.Fatal(err)
		}
		var o map[string]any
		json.NewDecoder(res.Body).Decode(&o)
		res.Body.Close()
		if o["status"] == "Confirmed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order: %v", o)
		}
	}

	// Healthy (what is still settling is in flight, not a violation).
	code, out, errOut := runAudit(t, "--data", dir)
	if code != 0 || !strings.Contains(out, "no violations") || !strings.Contains(out, "checkout_outcomes") {
		t.Fatalf("audit of a healthy platform: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runAudit(t, "--data", dir, "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name    string `json:"name"`
			Checked int    `json:"checked"`
			Skipped string `json:"skipped"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || !rep.OK || len(rep.Checks) != 7 {
		t.Fatalf("audit --json: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	for _, c := range rep.Checks {
		if c.Name == "consumers" {
			if c.Skipped == "" {
				t.Errorf("consumers checked without a bus to ask: %+v", c)
			}
		} else if c.Checked == 0 {
			t.Errorf("%s checked nothing", c.Name)
		}
	}

	// A balance the stream does not say.
	db, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(dir, "payments", "readmodels.db"), false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE payments_accounts SET balance = balance - 1 WHERE id = $1`, acct); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runAudit(t, "--data", dir)
	if code != 1 || !strings.Contains(out, "account:"+acct) || !strings.Contains(out, "currency:USD") ||
		!strings.Contains(errOut, "the audit found violations: 2") {
		t.Fatalf("audit of a tampered platform: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut = runAudit(t, "--data", t.TempDir()); code != 1 || !strings.Contains(errOut, "no event store") {
		t.Fatalf("audit of an empty directory: exit %d\n%s", code, errOut)
	}
}
