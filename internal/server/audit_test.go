package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/audit"
	"github.com/agora-commerce/agora/internal/inventory"
	invapp "github.com/agora-commerce/agora/internal/inventory/app"
	"github.com/agora-commerce/agora/internal/server"
	"github.com/agora-commerce/agora/internal/shipping"
	shipapp "github.com/agora-commerce/agora/internal/shipping/app"
	"github.com/agora-commerce/agora/internal/testenv"
)

// check returns the report's check called name.
func check(t *testing.T, rep audit.Report, name string) audit.Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, rep)
	return audit.Check{}
}

// subjects lists a check's violations as "subject: problem".
func subjects(c audit.Check) []string {
	var out []string
	for _, v := range c.Violations {
		out = append(out, v.Subject+": "+v.Problem)
	}
	return out
}

// TestAuditEmbedded runs the audit on a healthy embedded platform after
// checkouts that ended each way (ok, with something checked by every
// check), over HTTP (an admin's, not a customer's), then breaks each
// invariant by writing to the stores directly and expects each check to
// name what broke.
func TestAuditEmbedded(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	ctx := context.Background()
	p := w.product(1250, 5)
	a := w.account(10_000)
	confirmed := w.order(a, p, 2, "62701")
	w.expect(confirmed, "Confirmed", "")
	outOfStock := w.order(a, p, 9, "62701")
	w.expect(outOfStock, "Cancelled", "out_of_stock")
	poor := w.account(100)
	w.expect(w.order(poor, p, 1, "62701"), "Cancelled", "insufficient_funds")
	w.invariants()

	var rep audit.Report
	w.eventually("a healthy platform audits ok", func() string {
		var err error
		if rep, err = w.srv.Audit(ctx, audit.Options{Grace: -1}); err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			b, _ := json.Marshal(rep.Violations())
			return string(b)
		}
		return ""
	})
	for _, c := range rep.Checks {
		if c.Checked == 0 || c.Skipped != "" {
			t.Errorf("check %s checked %d (skipped %q), want some", c.Name, c.Checked, c.Skipped)
		}
	}
	if n := check(t, rep, audit.CheckCheckouts).Checked; n < 3 {
		t.Errorf("checkouts checked %d, want at least 3", n)
	}

	// Over HTTP: an admin's, 200; a customer's, 403.
	r := w.do("GET", "/api/v1/ops/audit", nil)
	if r.status != http.StatusOK || r.body["ok"] != true || len(r.body["checks"].([]any)) != 7 {
		t.Fatalf("audit as the admin: %d %s", r.status, r.raw)
	}
	customer, _ := w.customer("demo", 0)
	r = customer.do("GET", "/api/v1/ops/audit", nil)
	testenv.Problem(t, r.status, r.header, r.raw, http.StatusForbidden)

	// Break every invariant behind the platform's back.
	dbOf := func(name string) *sql.DB {
		if db := w.srv.DBOf(name); db != nil {
			return db
		}
		t.Fatalf("no store of %s", name)
		return nil
	}
	db := dbOf("payments")
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// A read-model balance that its stream does not say.
	exec(`UPDATE payments_accounts SET balance = balance + 7 WHERE id = $1`, a)
	// A saga stuck past its deadline, and one that failed.
	old := time.Now().Add(-time.Hour).UnixNano()
	db = dbOf("ordering")
	exec(`INSERT INTO saga_instances (id, type, status, updated_at, tenant) VALUES ('checkout-stuck', 'checkout', 'Started', $1, 'demo')`, old)
	exec(`INSERT INTO saga_instances (id, type, status, updated_at, tenant) VALUES ('checkout-failed', 'checkout', 'Failed', $1, 'demo')`, old)
	// Stock held again for the confirmed order, whose shipment is then
	// called off.
	hold, err := invapp.StockType().Encode(inventory.StockReserved{ProductID: p, OrderID: confirmed, Quantity: 1, At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	cancel, err := shipapp.ShipmentType().Encode(shipping.ShipmentCancelled{OrderID: confirmed, At: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.srv.StoreOf("inventory").Append(ctx, "stock-"+p, eventstore.Any, hold); err != nil {
		t.Fatal(err)
	}
	if _, err := w.srv.StoreOf("shipping").Append(ctx, shipapp.ShipmentType().StreamID(confirmed), eventstore.Any, cancel); err != nil {
		t.Fatal(err)
	}

	rep, err = w.srv.Audit(ctx, audit.Options{Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatal("the audit of a broken platform is ok")
	}
	want := map[string][]string{
		audit.CheckMoney:        {"currency:USD: the accounts' balances do not add up to the money put in minus the money taken out"},
		audit.CheckAccounts:     {"account:" + a + ": the read model's row differs from the fold of the account's stream"},
		audit.CheckReservations: {"order:" + confirmed + ": stock is still reserved for an order that ended"},
		audit.CheckCheckouts:    {"order:" + confirmed + ": the confirmed order's shipment is not arranged"},
		audit.CheckSagas: {"saga:checkout-stuck: the saga is unfinished past its deadline",
			"saga:checkout-failed: the saga failed: its compensation ran out of attempts and it needs an operator (POST /api/v1/sagas/{id}/retry)"},
		audit.CheckRelays:    nil,
		audit.CheckConsumers: nil,
	}
	for name, subs := range want {
		got := subjects(check(t, rep, name))
		slices.Sort(got)
		slices.Sort(subs)
		if !slices.Equal(got, subs) {
			t.Errorf("%s: violations %q, want %q", name, got, subs)
		}
	}
	money := check(t, rep, audit.CheckMoney).Violations[0].Details
	if money["difference"] != int64(7) {
		t.Errorf("money: %v, want a difference of 7", money)
	}
	row := check(t, rep, audit.CheckAccounts).Violations[0].Details["balance"].(map[string]any)
	if row["read_model"].(int64)-row["stream"].(int64) != 7 {
		t.Errorf("account: %v, want the read model 7 over the stream", row)
	}

	// The endpoint answers the same report: 200, ok false.
	r = w.do("GET", "/api/v1/ops/audit", nil)
	if r.status != http.StatusOK || r.body["ok"] != false || !strings.Contains(string(r.raw), "checkout-failed") {
		t.Fatalf("audit of a broken platform: %d %s", r.status, r.raw)
	}
}
