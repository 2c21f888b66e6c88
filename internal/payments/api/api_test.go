package api_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/payments/paymentsmod"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/testenv"
)

// The payments module runs alone behind the route table's guard; every
// check goes through its HTTP API. One module runs per storage engine,
// and each subtest uses its own owners (or its own tenant) so that the
// subtests do not see each other's accounts.

func usd(n int64) string { return fmt.Sprintf(`{"amount":%d,"currency":"USD"}`, n) }

// balance returns a body's balance object as (amount, currency).
func balance(t *testing.T, body map[string]any) (int64, string) {
	t.Helper()
	b, ok := body["balance"].(map[string]any)
	if !ok {
		t.Fatalf("no balance in %v", body)
	}
	a, ok := b["amount"].(float64)
	c, _ := b["currency"].(string)
	if !ok || c == "" {
		t.Fatalf("balance %v", b)
	}
	return int64(a), c
}

// open opens an account as c and returns its ID and the write's position.
func open(t *testing.T, c *moduletest.Client, owner, currency string, initial int64) (string, string) {
	t.Helper()
	r := c.Do("POST", "/api/v1/accounts", fmt.Sprintf(`{"owner_id":%q,"currency":%q,"initial_balance":{"amount":%d,"currency":%q}}`,
		owner, currency, initial, currency))
	if r.Status != http.StatusCreated {
		t.Fatalf("open: %d %s", r.Status, r.Raw)
	}
	id, _ := r.Body["id"].(string)
	if id == "" || r.Header.Get("Location") != "/api/v1/accounts/"+id {
		t.Fatalf("open: id %q, Location %q: %s", id, r.Header.Get("Location"), r.Raw)
	}
	if amt, cur := balance(t, r.Body); amt != initial || cur != currency || r.Body["owner_id"] != owner || r.Body["status"] != "Active" {
		t.Fatalf("open: %s", r.Raw)
	}
	return id, moduletest.Position(t, r)
}

// account reads account id as c, once the read model includes pos ("" for
// no wait), and checks its balance.
func account(t *testing.T, c *moduletest.Client, id, pos string, want int64) map[string]any {
	t.Helper()
	var headers []string
	if pos != "" {
		headers = []string{"Agora-Min-Position", pos}
	}
	r := c.Do("GET", "/api/v1/accounts/"+id, "", headers...)
	if r.Status != http.StatusOK || r.Body["id"] != id {
		t.Fatalf("GET account %s: %d %s", id, r.Status, r.Raw)
	}
	if got, _ := balance(t, r.Body); got != want {
		t.Fatalf("account %s balance %d, want %d: %s", id, got, want, r.Raw)
	}
	return r.Body
}

// list reads every page of path as c (moduletest's All).
func list(t *testing.T, c *moduletest.Client, path, pos string, limit int) []map[string]any {
	t.Helper()
	return c.All(path, pos, limit)
}

func ids(items []map[string]any) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i], _ = it["id"].(string)
	}
	return out
}

func TestPaymentsAPI(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, paymentsmod.Module, store, db, nil)
		t.Run("open", func(t *testing.T) { testOpen(t, h.On(t)) })
		t.Run("money", func(t *testing.T) { testMoney(t, h.On(t)) })
		t.Run("list", func(t *testing.T) { testList(t, h.On(t)) })
		t.Run("events", func(t *testing.T) { testEvents(t, h.On(t)) })
		t.Run("transfers", func(t *testing.T) { testTransfers(t, h.On(t)) })
		t.Run("ids", func(t *testing.T) { testIDs(t, h.On(t)) })
	})
}

// testOpen: admins and merchants open accounts (201, Location,
// Agora-Position), a read with Agora-Min-Position sees the write at once,
// and a customer or a bad request opens nothing.
func testOpen(t *testing.T, h *moduletest.Harness) {
	admin := h.AsUser("open-t", "open-admin", "admin")
	merchant := h.AsUser("open-t", "open-merchant", "merchant")
	customer := h.AsUser("open-t", "open-c1", "customer")

	id, pos := open(t, admin, "open-c1", "USD", 1250)
	// Read-your-writes: with the write's position, the read model shows it.
	body := account(t, customer, id, pos, 1250)
	if body["owner_id"] != "open-c1" || body["status"] != "Active" || body["transaction_count"] != float64(1) ||
		body["version"] != float64(1) || body["last_activity"] == nil {
		t.Fatalf("account as read: %v", body)
	}
	id2, pos := open(t, merchant, "open-c2", "EUR", 0)
	if b := account(t, admin, id2, pos, 0); b["transaction_count"] != float64(0) || b["balance"].(map[string]any)["currency"] != "EUR" {
		t.Fatalf("EUR account as read: %v", b)
	}
	// Without an initial balance an account opens at zero.
	r := admin.Do("POST", "/api/v1/accounts", `{"owner_id":"open-c3","currency":"USD"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("open without initial balance: %d %s", r.Status, r.Raw)
	}
	if amt, _ := balance(t, r.Body); amt != 0 {
		t.Fatalf("open without initial balance: %s", r.Raw)
	}
	moduletest.Position(t, r)

	// The guard refuses customers and anonymous callers.
	moduletest.Problem(t, customer.Do("POST", "/api/v1/accounts", `{"owner_id":"open-ghost","currency":"USD"}`), http.StatusForbidden, "")
	moduletest.Problem(t, h.As("").Do("POST", "/api/v1/accounts", `{"owner_id":"open-ghost","currency":"USD"}`), http.StatusUnauthorized, "")

	for _, c := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"lower-case currency", `{"owner_id":"open-ghost","currency":"usd"}`, http.StatusBadRequest, "currency"},
		{"unknown currency", `{"owner_id":"open-ghost","currency":"XQZ"}`, http.StatusBadRequest, "currency"},
		{"no currency", `{"owner_id":"open-ghost"}`, http.StatusBadRequest, "currency"},
		{"no owner", `{"currency":"USD"}`, http.StatusBadRequest, "owner_id"},
		{"unknown field", `{"owner_id":"open-ghost","currency":"USD","overdraft":100}`, http.StatusBadRequest, "overdraft"},
		{"negative initial balance", `{"owner_id":"open-ghost","currency":"USD","initial_balance":` + usd(-5) + `}`, http.StatusUnprocessableEntity, ""},
		{"initial balance in another currency", `{"owner_id":"open-ghost","currency":"USD","initial_balance":{"amount":5,"currency":"EUR"}}`, http.StatusUnprocessableEntity, ""},
		{"initial balance not money", `{"owner_id":"open-ghost","currency":"USD","initial_balance":"lots"}`, http.StatusBadRequest, ""},
		{"not JSON", `{"owner_id":`, http.StatusBadRequest, ""},
	} {
		r := admin.Do("POST", "/api/v1/accounts", c.body)
		if c.field != "" {
			moduletest.BadField(t, r, c.field)
		} else {
			moduletest.Problem(t, r, c.status, "")
		}
		if r.Header.Get("Agora-Position") != "" {
			t.Errorf("%s: a refused open has a position", c.name)
		}
	}
	// Nothing was opened for open-ghost: the tenant's accounts, once the
	// read model includes a write made after every refusal, are the four
	// opened above.
	_, pos = open(t, admin, "open-c4", "USD", 1)
	all := list(t, admin, "/api/v1/accounts", pos, 500)
	owners := make([]string, 0, len(all))
	for _, a := range all {
		owners = append(owners, a["owner_id"].(string))
	}
	slices.Sort(owners)
	if !slices.Equal(owners, []string{"open-c1", "open-c2", "open-c3", "open-c4"}) {
		t.Fatalf("the tenant's accounts are owned by %v", owners)
	}
}

// testMoney: deposits, withdrawals and closing, by the owner and by an
// admin; others are told the account does not exist, and change nothing.
func testMoney(t *testing.T, h *moduletest.Harness) {
	admin := h.AsUser("demo", "money-admin", "admin")
	owner := h.AsUser("demo", "money-c1", "customer")
	neighbour := h.AsUser("demo", "money-c2", "customer")
	stranger := h.AsUser("elsewhere", "money-admin2", "admin")

	id, _ := open(t, admin, "money-c1", "USD", 100)
	deposit := func(c *moduletest.Client, n int64) moduletest.Response {
		return c.Do("POST", "/api/v1/accounts/"+id+"/deposits", `{"amount":`+usd(n)+`}`)
	}
	withdraw := func(c *moduletest.Client, n int64) moduletest.Response {
		return c.Do("POST", "/api/v1/accounts/"+id+"/withdrawals", `{"amount":`+usd(n)+`}`)
	}

	r := deposit(owner, 50)
	if r.Status != http.StatusOK {
		t.Fatalf("the owner deposits: %d %s", r.Status, r.Raw)
	}
	if amt, _ := balance(t, r.Body); amt != 150 {
		t.Fatalf("after the owner's deposit: %s", r.Raw)
	}
	moduletest.Position(t, r)
	r = withdraw(admin, 30)
	if r.Status != http.StatusOK {
		t.Fatalf("an admin withdraws: %d %s", r.Status, r.Raw)
	}
	pos := moduletest.Position(t, r)
	if b := account(t, owner, id, pos, 120); b["transaction_count"] != float64(3) || b["version"] != float64(3) {
		t.Fatalf("after a deposit and a withdrawal: %v", b)
	}

	// Another customer of the tenant and an admin of another tenant are
	// told the account does not exist: for reads and writes alike.
	for name, c := range map[string]*moduletest.Client{"another customer": neighbour, "another tenant's admin": stranger} {
		moduletest.Problem(t, deposit(c, 1000), http.StatusNotFound, "")
		moduletest.Problem(t, withdraw(c, 10), http.StatusNotFound, "")
		moduletest.Problem(t, c.Do("POST", "/api/v1/accounts/"+id+"/close", ""), http.StatusNotFound, "")
		r := c.Do("GET", "/api/v1/accounts/"+id, "")
		moduletest.Problem(t, r, http.StatusNotFound, "")
		// The same answer as for an account that does not exist at all.
		if missing := c.Do("GET", "/api/v1/accounts/no-such-account", ""); missing.Status != r.Status || missing.Body["type"] != r.Body["type"] {
			t.Errorf("%s: a hidden account answers %s, a missing one %s", name, r.Raw, missing.Raw)
		}
	}
	// Nothing changed: a write after the refusals is the fourth.
	r = deposit(owner, 1)
	if r.Status != http.StatusOK {
		t.Fatalf("deposit: %d %s", r.Status, r.Raw)
	}
	if b := account(t, admin, id, moduletest.Position(t, r), 121); b["transaction_count"] != float64(4) || b["version"] != float64(4) {
		t.Fatalf("after refused writes by others: %v", b)
	}

	// The rules of an account.
	moduletest.Problem(t, withdraw(owner, 122), http.StatusConflict, "insufficient_funds")
	moduletest.Problem(t, deposit(owner, 0), http.StatusUnprocessableEntity, "invalid_amount")
	moduletest.Problem(t, deposit(owner, -5), http.StatusUnprocessableEntity, "invalid_amount")
	moduletest.Problem(t, owner.Do("POST", "/api/v1/accounts/"+id+"/deposits", `{"amount":{"amount":5,"currency":"EUR"}}`), http.StatusUnprocessableEntity, "currency_mismatch")
	moduletest.BadField(t, owner.Do("POST", "/api/v1/accounts/"+id+"/deposits", `{}`), "amount")
	moduletest.BadField(t, owner.Do("POST", "/api/v1/accounts/"+id+"/deposits", `{"amount":`+usd(5)+`,"memo":"x"}`), "memo")
	moduletest.Problem(t, owner.Do("POST", "/api/v1/accounts/"+id+"/close", ""), http.StatusConflict, "non_zero_balance")
	moduletest.Problem(t, owner.Do("POST", "/api/v1/accounts/no-such-account/deposits", `{"amount":`+usd(5)+`}`), http.StatusNotFound, "")

	// Emptied, it closes; closed, it takes nothing.
	if r := withdraw(owner, 121); r.Status != http.StatusOK {
		t.Fatalf("withdraw everything: %d %s", r.Status, r.Raw)
	}
	r = owner.Do("POST", "/api/v1/accounts/"+id+"/close", "")
	if r.Status != http.StatusOK || r.Body["status"] != "Closed" {
		t.Fatalf("close at zero: %d %s", r.Status, r.Raw)
	}
	pos = moduletest.Position(t, r)
	moduletest.Problem(t, deposit(owner, 10), http.StatusConflict, "account_closed")
	moduletest.Problem(t, deposit(admin, 10), http.StatusConflict, "account_closed")
	moduletest.Problem(t, owner.Do("POST", "/api/v1/accounts/"+id+"/close", ""), http.StatusConflict, "account_closed")
	if b := account(t, owner, id, pos, 0); b["status"] != "Closed" || b["version"] != float64(6) {
		t.Fatalf("closed account: %v", b)
	}
}

// testList: an admin lists the tenant's accounts, filtered and paginated;
// the list never crosses tenants, and customers may not list.
func testList(t *testing.T, h *moduletest.Harness) {
	admin := h.AsUser("list-t", "list-admin", "admin")
	// Ten accounts with 0, 100, …, 900; the one with 0 closes.
	var opened []string
	for i := range 10 {
		id, _ := open(t, admin, fmt.Sprintf("list-c%d", i), "USD", int64(i)*100)
		opened = append(opened, id)
	}
	r := admin.Do("POST", "/api/v1/accounts/"+opened[0]+"/close", "")
	if r.Status != http.StatusOK {
		t.Fatalf("close: %d %s", r.Status, r.Raw)
	}
	moduletest.Position(t, r)
	// Another tenant's rich account, opened last (its position covers
	// every write above), never shows.
	_, pos := open(t, h.AsUser("list-other", "list-admin2", "admin"), "list-c0", "USD", 5000)

	all := list(t, admin, "/api/v1/accounts", pos, 500)
	want := slices.Sorted(slices.Values(opened))
	if got := ids(all); !slices.Equal(got, want) {
		t.Fatalf("all accounts %v, want %v (ordered by id)", got, want)
	}
	// Paginated, three at a time: the same accounts, each once.
	for _, limit := range []int{1, 3, 10} {
		if got := ids(list(t, admin, "/api/v1/accounts", pos, limit)); !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %v, want %v", limit, got, want)
		}
	}
	closed := list(t, admin, "/api/v1/accounts?status=Closed", pos, 50)
	if got := ids(closed); !slices.Equal(got, []string{opened[0]}) || closed[0]["status"] != "Closed" {
		t.Fatalf("closed accounts %v, want %v", got, opened[0])
	}
	if active := list(t, admin, "/api/v1/accounts?status=Active", pos, 4); len(active) != 9 || slices.Contains(ids(active), opened[0]) {
		t.Fatalf("active accounts %v", ids(active))
	}
	rich := list(t, admin, "/api/v1/accounts?min_balance=700", pos, 2)
	if got := ids(rich); !slices.Equal(got, slices.Sorted(slices.Values(opened[7:]))) {
		t.Fatalf("accounts with at least 700: %v, want %v", got, opened[7:])
	}
	for _, a := range rich {
		if amt, _ := balance(t, a); amt < 700 {
			t.Fatalf("min_balance=700 lists %v", a)
		}
	}
	if got := list(t, admin, "/api/v1/accounts?status=Active&min_balance=850", pos, 50); len(got) != 1 || got[0]["id"] != opened[9] {
		t.Fatalf("active with at least 850: %v", ids(got))
	}
	if got := list(t, admin, "/api/v1/accounts?status=Closed&min_balance=1", pos, 50); len(got) != 0 {
		t.Fatalf("closed with at least 1: %v", ids(got))
	}

	// Customers and merchants may not list; bad queries are 400s.
	moduletest.Problem(t, h.AsUser("list-t", "list-c1", "customer").Do("GET", "/api/v1/accounts", ""), http.StatusForbidden, "")
	moduletest.Problem(t, h.AsUser("list-t", "list-m", "merchant").Do("GET", "/api/v1/accounts", ""), http.StatusForbidden, "")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts?owner=list-c1", ""), "owner")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts?status=Frozen", ""), "status")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts?min_balance=lots", ""), "min_balance")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts?limit=0", ""), "limit")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts?limit=501", ""), "limit")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts?cursor=not-a-cursor", ""), "cursor")
	moduletest.Problem(t, admin.Do("GET", "/api/v1/accounts", "", "Agora-Min-Position", "soon"), http.StatusBadRequest, "")
}

// testEvents: an account's event stream, paginated, for its owner and the
// tenant's admins only.
func testEvents(t *testing.T, h *moduletest.Harness) {
	admin := h.AsUser("demo", "events-admin", "admin")
	owner := h.AsUser("demo", "events-c1", "customer")
	id, _ := open(t, admin, "events-c1", "USD", 100)
	for _, w := range []struct{ path, amount string }{{"deposits", usd(5)}, {"withdrawals", usd(3)}, {"deposits", usd(1)}} {
		if r := owner.Do("POST", "/api/v1/accounts/"+id+"/"+w.path, `{"amount":`+w.amount+`}`); r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", w.path, r.Status, r.Raw)
		}
	}
	wantTypes := []string{"payments.AccountOpened", "payments.MoneyDeposited", "payments.MoneyWithdrawn", "payments.MoneyDeposited"}

	page := func(c *moduletest.Client, query string) ([]map[string]any, string) {
		t.Helper()
		r := c.Do("GET", "/api/v1/accounts/"+id+"/events"+query, "")
		if r.Status != http.StatusOK {
			t.Fatalf("events%s: %d %s", query, r.Status, r.Raw)
		}
		var items []map[string]any
		for _, it := range r.Body["items"].([]any) {
			items = append(items, it.(map[string]any))
		}
		next, _ := r.Body["next_cursor"].(string)
		return items, next
	}
	for _, c := range []*moduletest.Client{owner, admin} {
		var got []map[string]any
		first, next := page(c, "?limit=3")
		if len(first) != 3 || next == "" {
			t.Fatalf("first page: %d items, next %q", len(first), next)
		}
		got = append(got, first...)
		rest, end := page(c, "?limit=3&cursor="+next)
		if len(rest) != 1 || end != "" {
			t.Fatalf("second page: %d items, next %q", len(rest), end)
		}
		got = append(got, rest...)
		for i, e := range got {
			if e["type"] != wantTypes[i] || e["version"] != float64(i+1) || e["id"] == "" || e["data"] == nil {
				t.Fatalf("event %d: %v", i, e)
			}
			if i > 0 && e["position"].(float64) <= got[i-1]["position"].(float64) {
				t.Fatalf("positions out of order: %v then %v", got[i-1], e)
			}
		}
		if all, next := page(c, ""); len(all) != 4 || next != "" {
			t.Fatalf("default page: %d items, next %q", len(all), next)
		}
	}
	moduletest.Problem(t, h.AsUser("demo", "events-c2", "customer").Do("GET", "/api/v1/accounts/"+id+"/events", ""), http.StatusNotFound, "")
	moduletest.Problem(t, h.AsUser("elsewhere", "events-admin2", "admin").Do("GET", "/api/v1/accounts/"+id+"/events", ""), http.StatusNotFound, "")
	moduletest.Problem(t, owner.Do("GET", "/api/v1/accounts/no-such-account/events", ""), http.StatusNotFound, "")
	moduletest.BadField(t, owner.Do("GET", "/api/v1/accounts/"+id+"/events?cursor=garbage", ""), "cursor")
	moduletest.BadField(t, owner.Do("GET", "/api/v1/accounts/"+id+"/events?limit=0", ""), "limit")
}

// testTransfers: a transfer is accepted (202), runs as a saga, and ends
// Completed with the money moved, or Failed with a reason and nothing
// moved; who may start and see one.
func testTransfers(t *testing.T, h *moduletest.Harness) {
	admin := h.AsUser("demo", "tr-admin", "admin")
	c1 := h.AsUser("demo", "tr-c1", "customer")
	c2 := h.AsUser("demo", "tr-c2", "customer")
	c3 := h.AsUser("demo", "tr-c3", "customer")
	a, _ := open(t, admin, "tr-c1", "USD", 1000)
	b, _ := open(t, admin, "tr-c2", "USD", 0)
	e, _ := open(t, admin, "tr-c1", "EUR", 1000)
	closedAcct, _ := open(t, admin, "tr-c2", "USD", 0)
	if r := c2.Do("POST", "/api/v1/accounts/"+closedAcct+"/close", ""); r.Status != http.StatusOK {
		t.Fatalf("close: %d %s", r.Status, r.Raw)
	}

	start := func(c *moduletest.Client, from, to string, amount int64) string {
		t.Helper()
		r := c.Do("POST", "/api/v1/transfers", fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, from, to, usd(amount)))
		if r.Status != http.StatusAccepted || r.Body["status"] != "Pending" {
			t.Fatalf("transfer %s → %s: %d %s", from, to, r.Status, r.Raw)
		}
		id, _ := r.Body["id"].(string)
		if id == "" || r.Header.Get("Location") != "/api/v1/transfers/"+id {
			t.Fatalf("transfer: id %q, Location %q", id, r.Header.Get("Location"))
		}
		moduletest.Position(t, r)
		return id
	}
	// settle waits until transfer id is no longer Pending and returns it.
	settle := func(c *moduletest.Client, id string) map[string]any {
		t.Helper()
		var body map[string]any
		moduletest.Eventually(t, "transfer "+id, func() (bool, string) {
			r := c.Do("GET", "/api/v1/transfers/"+id, "")
			if r.Status != http.StatusOK {
				t.Fatalf("GET transfer %s: %d %s", id, r.Status, r.Raw)
			}
			body = r.Body
			return r.Body["status"] != "Pending", string(r.Raw)
		})
		if body["id"] != id {
			t.Fatalf("transfer %s: %v", id, body)
		}
		return body
	}
	// sync returns a position after every write so far: a deposit of 1
	// to account acct.
	sync := func(acct string) string {
		t.Helper()
		r := admin.Do("POST", "/api/v1/accounts/"+acct+"/deposits", `{"amount":`+usd(1)+`}`)
		if r.Status != http.StatusOK {
			t.Fatalf("deposit: %d %s", r.Status, r.Raw)
		}
		return moduletest.Position(t, r)
	}

	id := start(c1, a, b, 300)
	if tr := settle(c1, id); tr["status"] != "Completed" || tr["reason"] != nil {
		t.Fatalf("transfer: %v", tr)
	}
	pos := sync(a)
	account(t, c1, a, pos, 701)
	account(t, c2, b, pos, 300)
	// The admin sees it; a customer who does not own the paying account
	// is told it does not exist, as is another tenant's admin.
	if r := admin.Do("GET", "/api/v1/transfers/"+id, ""); r.Status != http.StatusOK || r.Body["status"] != "Completed" {
		t.Fatalf("the admin reads the transfer: %d %s", r.Status, r.Raw)
	}
	moduletest.Problem(t, c3.Do("GET", "/api/v1/transfers/"+id, ""), http.StatusNotFound, "")
	moduletest.Problem(t, h.AsUser("elsewhere", "tr-admin2", "admin").Do("GET", "/api/v1/transfers/"+id, ""), http.StatusNotFound, "")
	moduletest.Problem(t, c1.Do("GET", "/api/v1/transfers/no-such-transfer", ""), http.StatusNotFound, "")

	// Insufficient funds: accepted, then Failed with the reason; nothing moved.
	id = start(c1, a, b, 5000)
	if tr := settle(c1, id); tr["status"] != "Failed" || tr["reason"] != "insufficient_funds" {
		t.Fatalf("transfer beyond the balance: %v", tr)
	}
	pos = sync(b)
	account(t, c1, a, pos, 701)
	account(t, c2, b, pos, 301)

	// A closed target: the debit is given back; nothing moved.
	id = start(admin, a, closedAcct, 200)
	if tr := settle(admin, id); tr["status"] != "Failed" || tr["reason"] != "account_closed" {
		t.Fatalf("transfer to a closed account: %v", tr)
	}
	pos = sync(b)
	account(t, c1, a, pos, 701)
	account(t, c2, b, pos, 302)
	account(t, c2, closedAcct, pos, 0)

	// Refused at once.
	for _, c := range []struct {
		name   string
		caller *moduletest.Client
		body   string
		status int
		reason string
	}{
		{"currency mismatch between accounts", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, e, usd(10)), http.StatusUnprocessableEntity, "currency_mismatch"},
		{"amount in another currency", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":{"amount":10,"currency":"EUR"}}`, a, b), http.StatusUnprocessableEntity, "currency_mismatch"},
		{"zero amount", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, b, usd(0)), http.StatusUnprocessableEntity, "invalid_amount"},
		{"negative amount", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, b, usd(-10)), http.StatusUnprocessableEntity, "invalid_amount"},
		{"from == to", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, a, usd(10)), http.StatusBadRequest, ""},
		{"no amount", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q}`, a, b), http.StatusBadRequest, ""},
		{"unknown field", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s,"note":"hi"}`, a, b, usd(10)), http.StatusBadRequest, ""},
		{"another's account", c2, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, b, usd(10)), http.StatusNotFound, ""},
		{"another tenant's admin", h.AsUser("elsewhere", "tr-admin2", "admin"), fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, b, usd(10)), http.StatusNotFound, ""},
		{"no such target", c1, fmt.Sprintf(`{"from_account_id":%q,"to_account_id":"no-such-account","amount":%s}`, a, usd(10)), http.StatusNotFound, ""},
	} {
		r := c.caller.Do("POST", "/api/v1/transfers", c.body)
		if r.Status != c.status || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Raw, c.status)
			continue
		}
		moduletest.Problem(t, r, c.status, c.reason)
	}
	// Nothing moved by the refusals.
	pos = sync(b)
	account(t, c1, a, pos, 701)
	account(t, c2, b, pos, 303)
	account(t, c1, e, pos, 1000)
	moduletest.Problem(t, h.As("").Do("POST", "/api/v1/transfers", fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, b, usd(10))), http.StatusUnauthorized, "")
}

// testIDs: an ID with control characters is a bad request wherever it
// appears in a path.
func testIDs(t *testing.T, h *moduletest.Harness) {
	admin := h.As("admin")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/accounts/%01", ""},
		{"GET", "/api/v1/accounts/a%7Fb", ""},
		{"GET", "/api/v1/accounts/a%0Ab/events", ""},
		{"POST", "/api/v1/accounts/%01/deposits", `{"amount":` + usd(5) + `}`},
		{"POST", "/api/v1/accounts/%01/withdrawals", `{"amount":` + usd(5) + `}`},
		{"POST", "/api/v1/accounts/%1F/close", ""},
		{"GET", "/api/v1/transfers/%01", ""},
	} {
		moduletest.BadField(t, admin.Do(c.method, c.path, c.body), "id")
	}
	moduletest.BadField(t, admin.Do("POST", "/api/v1/accounts", `{"owner_id":"a\u0001b","currency":"USD"}`), "owner_id")
	moduletest.BadField(t, admin.Do("POST", "/api/v1/transfers", `{"from_account_id":"a\u0001","to_account_id":"b","amount":`+usd(1)+`}`), "from_account_id")
	moduletest.BadField(t, admin.Do("GET", "/api/v1/accounts/"+strings.Repeat("x", 129), ""), "id")
}

// TestTransfersStayInTheirTenantAndKeepTheirID: a transfer into another
// tenant's account is refused as if that account did not exist, and a
// transfer's ID names that transfer only: asked again it answers it as it
// stands, asked for another transfer it is refused.
func TestTransfersStayInTheirTenantAndKeepTheirID(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, paymentsmod.Module, store, db, nil)
		admin := h.AsUser("demo", "x-admin", "admin")
		far := h.AsUser("elsewhere", "far-admin", "admin")
		c1 := h.AsUser("demo", "x-c1", "customer")
		c2 := h.AsUser("demo", "x-c2", "customer")
		a, _ := open(t, admin, "x-c1", "USD", 1000)
		b, _ := open(t, admin, "x-c2", "USD", 1000)
		x, xpos := open(t, far, "far-owner", "USD", 0)
		r := c1.Do("POST", "/api/v1/transfers", fmt.Sprintf(`{"from_account_id":%q,"to_account_id":%q,"amount":%s}`, a, x, usd(100)))
		moduletest.Problem(t, r, http.StatusNotFound, "account_not_found")

		const id = "0190c0de-0000-7000-8000-000000000001"
		body := fmt.Sprintf(`{"id":%q,"from_account_id":%q,"to_account_id":%q,"amount":%s}`, id, a, b, usd(10))
		first := c1.Do("POST", "/api/v1/transfers", body)
		if first.Status != http.StatusAccepted || first.Body["id"] != id {
			t.Fatalf("transfer: %d %s", first.Status, first.Raw)
		}
		again := c1.Do("POST", "/api/v1/transfers", body)
		if again.Status != http.StatusAccepted || again.Body["id"] != id || again.Body["amount"].(map[string]any)["amount"] != float64(10) {
			t.Fatalf("the same transfer again: %d %s", again.Status, again.Raw)
		}
		r = c2.Do("POST", "/api/v1/transfers", fmt.Sprintf(`{"id":%q,"from_account_id":%q,"to_account_id":%q,"amount":%s}`, id, b, a, usd(999)))
		moduletest.Problem(t, r, http.StatusUnprocessableEntity, "transfer_id_reused")
		moduletest.Eventually(t, "transfer", func() (bool, string) {
			r := c1.Do("GET", "/api/v1/transfers/"+id, "")
			return r.Body["status"] == "Completed", string(r.Raw)
		})
		moduletest.Eventually(t, "the credit", func() (bool, string) {
			r := admin.Do("GET", "/api/v1/accounts/"+b, "") // the read model may lag: 404 until it has the account
			if r.Status != http.StatusOK {
				return false, string(r.Raw)
			}
			n, _ := balance(t, r.Body)
			return n == 1010, string(r.Raw)
		})
		account(t, far, x, xpos, 0)
	})
}

// TestReadYourWritesTimesOut: a read asked to wait for a position its
// read model never reaches answers 504 once the wait is over; a position
// that is not one is 400.
func TestReadYourWritesTimesOut(t *testing.T) {
	store, db := testenv.SQLite(t)
	h := moduletest.Start(t, paymentsmod.Module, store, db, nil)
	admin := h.As("admin")
	id, _ := open(t, admin, "dave", "USD", 0)
	start := time.Now()
	r := admin.Do("GET", "/api/v1/accounts/"+id, "", "Agora-Min-Position", "999999")
	moduletest.Problem(t, r, http.StatusGatewayTimeout, "read_model_lagging")
	if waited := time.Since(start); waited < httpapi.MaxConsistencyWait-time.Second {
		t.Fatalf("answered 504 after %v, before waiting", waited)
	}
	moduletest.Problem(t, admin.Do("GET", "/api/v1/accounts/"+id, "", "Agora-Min-Position", "abc"), http.StatusBadRequest, "")
}

// TestConcurrentClients: 32 clients deposit and withdraw at once on one
// account; every acknowledged change is in its balance and in its events,
// which never go below zero, and every refusal is for funds.
func TestConcurrentClients(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, paymentsmod.Module, store, db, nil)
		admin := h.As("admin")
		const initial = 5_000
		id, _ := open(t, admin, "frank", "USD", initial)
		var mu sync.Mutex
		var want int64 = initial
		var ok int
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for range 20 {
					amount := rng.Int64N(900) + 1
					path, sign := "/deposits", int64(1)
					if rng.IntN(2) == 0 {
						path, sign = "/withdrawals", -1
					}
					r := admin.Do("POST", "/api/v1/accounts/"+id+path, `{"amount":`+usd(amount)+`}`)
					mu.Lock()
					switch {
					case r.Status == http.StatusOK:
						want += sign * amount
						ok++
						if n, _ := balance(t, r.Body); n < 0 {
							t.Errorf("an answer shows a negative balance %d", n)
						}
					case r.Status == http.StatusConflict && r.Body["reason"] == "insufficient_funds" && sign < 0:
					default:
						t.Errorf("%s %d: %d %s", path, amount, r.Status, r.Raw)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		var replayed int64
		var last string
		cursor := ""
		for {
			ev := admin.Do("GET", "/api/v1/accounts/"+id+"/events?limit=100"+cursor, "")
			for _, it := range ev.Body["items"].([]any) {
				e := it.(map[string]any)
				d := e["data"].(map[string]any)
				switch e["type"] {
				case "payments.AccountOpened":
					replayed = int64(d["initial_balance"].(float64))
				case "payments.MoneyDeposited":
					replayed += int64(d["amount"].(map[string]any)["amount"].(float64))
				case "payments.MoneyWithdrawn":
					replayed -= int64(d["amount"].(map[string]any)["amount"].(float64))
				}
				if replayed < 0 {
					t.Fatalf("the balance went negative at version %v", e["version"])
				}
				last = strconv.FormatInt(int64(e["position"].(float64)), 10)
			}
			nc, more := ev.Body["next_cursor"].(string)
			if !more {
				break
			}
			cursor = "&cursor=" + nc
		}
		got := account(t, admin, id, last, want)
		if replayed != want || got["transaction_count"].(float64) != float64(ok+1) {
			t.Fatalf("replayed %d, acknowledged %d; transaction_count %v, want %d", replayed, want, got["transaction_count"], ok+1)
		}
	})
}
