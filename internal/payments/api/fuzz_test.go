package api_test

import (
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/payments/paymentsmod"
	"github.com/agora-commerce/agora/internal/testenv"
)

// FuzzPaymentsWrites sends arbitrary bodies to payments' writes
// (moduletest.FuzzWrites: never a 5xx, refusals are problems, a 2xx only
// for JSON): opening an account, deposits, withdrawals and closing as its
// owner, transfers.
func FuzzPaymentsWrites(f *testing.F) {
	store, db := testenv.SQLite(f)
	h := moduletest.Start(f, paymentsmod.Module, store, db, nil)
	admin, owner := h.As("admin"), h.AsUser("demo", "fz-1", "customer")
	ids := map[string]string{}
	for _, who := range []string{"fz-1", "fz-2", "fz-close"} {
		r := admin.Do("POST", "/api/v1/accounts", `{"owner_id":"`+who+`","currency":"USD","initial_balance":`+usd(1_000_000)+`}`)
		if r.Status != http.StatusCreated {
			f.Fatalf("open: %d %s", r.Status, r.Raw)
		}
		ids[who], _ = r.Body["id"].(string)
	}
	closing := h.AsUser("demo", "fz-close", "customer")
	a := "/api/v1/accounts/" + ids["fz-1"]
	moduletest.FuzzWrites(f, h, []moduletest.Write{
		{Method: "POST", Path: "/api/v1/accounts", As: admin},
		{Method: "POST", Path: a + "/deposits", As: owner},
		{Method: "POST", Path: a + "/withdrawals", As: owner},
		{Method: "POST", Path: "/api/v1/transfers", As: owner},
		{Method: "POST", Path: "/api/v1/accounts/" + ids["fz-close"] + "/close", As: closing},
	},
		`{"owner_id":"c-9","currency":"EUR","initial_balance":{"amount":100,"currency":"EUR"}}`,
		`{"owner_id":"c-9","currency":"USD"}`,
		`{"amount":`+usd(5)+`}`, `{"amount":{"amount":5,"currency":"EUR"}}`, `{"amount":`+usd(-5)+`}`,
		`{"amount":`+usd(9223372036854775807)+`}`, `{"amount":`+usd(0)+`}`, `{"amount":`+usd(5)+`,"memo":"x"}`,
		`{"from_account_id":"`+ids["fz-1"]+`","to_account_id":"`+ids["fz-2"]+`","amount":`+usd(10)+`}`,
		`{"id":"t-fz","from_account_id":"`+ids["fz-1"]+`","to_account_id":"`+ids["fz-2"]+`","amount":`+usd(10)+`}`,
		`{"from_account_id":"`+ids["fz-1"]+`","to_account_id":"`+ids["fz-1"]+`","amount":`+usd(10)+`}`,
		`{"from_account_id":"a\u0001","to_account_id":"b","amount":`+usd(1)+`}`,
		`{}`, `[]`, `null`, ``, ` `, `{"amount":`, `{"amount":{"amount":1e2,"currency":"USD"}}`,
	)
}
