package api_test

import (
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/ordering/orderingmod"
	"github.com/agora-commerce/agora/internal/testenv"
)

// FuzzOrderingWrites sends arbitrary bodies to ordering's writes
// (moduletest.FuzzWrites: never a 5xx, refusals are problems, a 2xx only
// for JSON): placing an order, cancelling one, retrying its checkout.
// The rest of the platform is the API test's world.
func FuzzOrderingWrites(f *testing.F) {
	store, db := testenv.SQLite(f)
	w := newWorld()
	w.letGo()
	go func() { // drains the slow shipments' notices while the target runs
		for range w.arranging {
		}
	}()
	h := moduletest.Start(f, orderingmod.Module, store, db, &moduletest.Options{Fakes: w.answers()})
	c := h.AsUser("demo", "c-fz", "customer")
	good := order("acct-c-fz", "Springfield", line{"p1", 2}, line{"p2", 1}).String()
	r := c.Do("POST", "/api/v1/orders", good)
	if r.Status != http.StatusAccepted {
		f.Fatalf("place: %d %s", r.Status, r.Raw)
	}
	id, _ := r.Body["id"].(string)
	moduletest.FuzzWrites(f, h, []moduletest.Write{
		{Method: "POST", Path: "/api/v1/orders", As: c},
		{Method: "POST", Path: "/api/v1/orders/" + id + "/cancel", As: c},
		{Method: "POST", Path: "/api/v1/sagas/checkout-" + id + "/retry", As: h.As("admin")},
	},
		good,
		order("acct-c-poor", "Springfield", line{"p1", 1}).String(),
		order("acct-c-fz", "Nowhere", line{"p-scarce", 1}).String(),
		order("far-c-fz", "Springfield", line{"p1", 1}).String(),
		order("acct-c-fz", "Springfield", line{"p1", 1_000_000}).String(),
		order("acct-c-fz", "Springfield", line{"nope", 1}).String(),
		`{"id":"o-fz","customer_id":"c-fz","items":[{"product_id":"p1","quantity":1}],"shipping_address":{"street":"1 Main St","city":"Springfield","zip_code":"1","country":"US"},"payment_account_id":"acct-c-fz","promotion_code":"WELCOME10"}`,
		`{"items":[{"product_id":"p1","quantity":9223372036854775807},{"product_id":"p1","quantity":9223372036854775807}],"shipping_address":{"city":"X"},"payment_account_id":"acct-c-fz","promotion_code":"FIVEOFF"}`,
		`{"items":[{"product_id":"p1","quantity":-1}]}`, `{"items":{}}`, `{"items":[null]}`,
		`{}`, `[]`, `null`, ``, `{"items":[`, good+good,
	)
}
