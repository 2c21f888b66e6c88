package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/server"
)

// TestHostileInputOnCommerceEndpoints sends bad input to every endpoint
// of the commerce contexts: each gets a 4xx problem+json, and nothing
// changes (products, stock, orders, balances, sagas).
func TestHostileInputOnCommerceEndpoints(t *testing.T) {
	w := bootWith(t, server.Orchestration, "embedded")
	p := w.product(1000, 5)
	a := w.account(10_000)
	other := w.account(5_000)
	id := w.order(a, p, 1, "62701")
	w.expect(id, "Confirmed", "")
	snapshot := func() string {
		// Each read waits for everything its context's log holds.
		var b strings.Builder
		for _, read := range []struct{ path, context string }{{"/api/v1/products", "catalog"}, {"/api/v1/inventory/" + p, "inventory"},
			{"/api/v1/orders?limit=500", "ordering"}, {"/api/v1/accounts/" + a, accountLog(a)}, {"/api/v1/accounts/" + other, accountLog(other)},
			{"/api/v1/sagas/checkout-" + id, "ordering"}, {"/api/v1/shipments/" + id, "shipping"}} {
			head, err := w.srv.StoreOf(read.context).Head(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			r := w.do("GET", read.path, nil, "Agora-Min-Position", read.context+"."+strconv.FormatUint(head, 10))
			b.WriteString(read.path + " " + string(r.raw) + "\n")
		}
		return b.String()
	}
	w.invariants()
	w.eventually("the orders read model shows the order", func() string {
		if r := w.do("GET", "/api/v1/orders?status=Confirmed", nil); len(r.body["items"].([]any)) != 1 {
			return string(r.raw)
		}
		return ""
	})
	before := snapshot()
	big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
	addr := `"shipping_address":{"street":"1 Main","city":"X","state":"Y","zip_code":"1","country":"US"}`
	item := `"items":[{"product_id":"` + p + `","quantity":1}]`
	cases := []struct {
		name, method, path, body string
	}{
		{"product: malformed", "POST", "/api/v1/products", `{"sku":`},
		{"product: unknown field", "POST", "/api/v1/products", `{"sku":"A1","name":"n","price":{"amount":1,"currency":"USD"},"colour":"red"}`},
		{"product: missing price", "POST", "/api/v1/products", `{"sku":"A1","name":"n"}`},
		{"product: negative price", "POST", "/api/v1/products", `{"sku":"A1","name":"n","price":{"amount":-5,"currency":"USD"}}`},
		{"product: zero price", "POST", "/api/v1/products", `{"sku":"A1","name":"n","price":{"amount":0,"currency":"USD"}}`},
		{"product: float price", "POST", "/api/v1/products", `{"sku":"A1","name":"n","price":{"amount":1.5,"currency":"USD"}}`},
		{"product: overflowing price", "POST", "/api/v1/products", `{"sku":"A1","name":"n","price":{"amount":99999999999999999999,"currency":"USD"}}`},
		{"product: bad currency", "POST", "/api/v1/products", `{"sku":"A1","name":"n","price":{"amount":5,"currency":"XYZ"}}`},
		{"product: bad sku", "POST", "/api/v1/products", `{"sku":"a b/c","name":"n","price":{"amount":5,"currency":"USD"}}`},
		{"product: empty name", "POST", "/api/v1/products", `{"sku":"A1","name":"  ","price":{"amount":5,"currency":"USD"}}`},
		{"product: 2 MiB body", "POST", "/api/v1/products", big},
		{"product: duplicate sku", "POST", "/api/v1/products", `{"sku":"` + w.do("GET", "/api/v1/products/"+p, nil).body["sku"].(string) + `","name":"n","price":{"amount":5,"currency":"USD"}}`},
		{"product update: nothing", "PUT", "/api/v1/products/" + p, `{}`},
		{"product update: wrong type", "PUT", "/api/v1/products/" + p, `{"name":7}`},
		{"product update: negative", "PUT", "/api/v1/products/" + p, `{"price":{"amount":-1,"currency":"USD"}}`},
		{"product update: unknown product", "PUT", "/api/v1/products/nope", `{"name":"x"}`},
		{"products: bad limit", "GET", "/api/v1/products?limit=0", ""},
		{"products: bad cursor", "GET", "/api/v1/products?cursor=@@@", ""},
		{"products: unknown param", "GET", "/api/v1/products?colour=red", ""},
		{"product: unknown", "GET", "/api/v1/products/nope", ""},
		{"restock: zero", "POST", "/api/v1/inventory/" + p + "/restock", `{"quantity":0}`},
		{"restock: negative", "POST", "/api/v1/inventory/" + p + "/restock", `{"quantity":-3}`},
		{"restock: huge", "POST", "/api/v1/inventory/" + p + "/restock", `{"quantity":10000000000}`},
		{"restock: string", "POST", "/api/v1/inventory/" + p + "/restock", `{"quantity":"5"}`},
		{"restock: missing", "POST", "/api/v1/inventory/" + p + "/restock", `{}`},
		{"restock: unknown product", "POST", "/api/v1/inventory/nope/restock", `{"quantity":1}`},
		{"inventory: unknown product", "GET", "/api/v1/inventory/nope", ""},
		{"order: malformed", "POST", "/api/v1/orders", `{"items":[`},
		{"order: empty", "POST", "/api/v1/orders", `{"items":[],` + addr + `,"payment_account_id":"` + a + `"}`},
		{"order: zero quantity", "POST", "/api/v1/orders", `{"items":[{"product_id":"` + p + `","quantity":0}],` + addr + `,"payment_account_id":"` + a + `"}`},
		{"order: negative quantity", "POST", "/api/v1/orders", `{"items":[{"product_id":"` + p + `","quantity":-1}],` + addr + `,"payment_account_id":"` + a + `"}`},
		{"order: no address", "POST", "/api/v1/orders", `{` + item + `,"payment_account_id":"` + a + `"}`},
		{"order: blank street", "POST", "/api/v1/orders", `{` + item + `,"shipping_address":{"street":"","city":"X","zip_code":"1","country":"US"},"payment_account_id":"` + a + `"}`},
		{"order: no account", "POST", "/api/v1/orders", `{` + item + `,` + addr + `}`},
		{"order: unknown product", "POST", "/api/v1/orders", `{"items":[{"product_id":"nope","quantity":1}],` + addr + `,"payment_account_id":"` + a + `"}`},
		{"order: unknown field", "POST", "/api/v1/orders", `{` + item + `,` + addr + `,"payment_account_id":"` + a + `","discount":100}`},
		{"order: unknown promotion", "POST", "/api/v1/orders", `{` + item + `,` + addr + `,"payment_account_id":"` + a + `","promotion_code":"FREE"}`},
		{"order: 2 MiB body", "POST", "/api/v1/orders", big},
		{"orders: bad status", "GET", "/api/v1/orders?status=Lost", ""},
		{"order: unknown", "GET", "/api/v1/orders/nope", ""},
		{"cancel: confirmed order", "POST", "/api/v1/orders/" + id + "/cancel", ""},
		{"cancel: unknown order", "POST", "/api/v1/orders/nope/cancel", ""},
		{"cancel: body", "POST", "/api/v1/orders/" + id + "/cancel", `{"reason":"x"}`},
		{"transfer: same account", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"` + a + `","amount":{"amount":1,"currency":"USD"}}`},
		{"transfer: negative", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"` + other + `","amount":{"amount":-1,"currency":"USD"}}`},
		{"transfer: zero", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"` + other + `","amount":0}`},
		{"transfer: other currency", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"` + other + `","amount":{"amount":1,"currency":"EUR"}}`},
		{"transfer: overflow", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"` + other + `","amount":{"amount":99999999999999999999,"currency":"USD"}}`},
		{"transfer: unknown account", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"nope","amount":{"amount":1,"currency":"USD"}}`},
		{"transfer: missing amount", "POST", "/api/v1/transfers", `{"from_account_id":"` + a + `","to_account_id":"` + other + `"}`},
		{"transfer: bad id", "POST", "/api/v1/transfers", `{"id":"x","from_account_id":"` + a + `","to_account_id":"` + other + `","amount":1}`},
		{"transfer: unknown", "GET", "/api/v1/transfers/nope", ""},
		{"saga: unknown", "GET", "/api/v1/sagas/nope", ""},
		{"saga retry: not failed", "POST", "/api/v1/sagas/checkout-" + id + "/retry", ""},
		{"saga retry: unknown", "POST", "/api/v1/sagas/nope/retry", ""},
		{"shipment: unknown", "GET", "/api/v1/shipments/nope", ""},
	}
	for _, c := range cases {
		var body any
		if c.body != "" {
			body = c.body
		}
		r := w.do(c.method, c.path, body)
		if r.status < 400 || r.status >= 500 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") || r.body["status"] == nil {
			t.Errorf("%s: %d %s %.200s", c.name, r.status, r.header.Get("Content-Type"), r.raw)
		}
	}
	// One answer lists every bad field, the handler's and the domain's.
	r := w.do("POST", "/api/v1/orders", `{"items":[{"product_id":"`+p+`","quantity":-1}],"payment_account_id":"`+a+`"}`)
	fields := map[string]bool{}
	for _, f := range r.body["errors"].([]any) {
		fields[f.(map[string]any)["field"].(string)] = true
	}
	if r.status != http.StatusBadRequest || !fields["shipping_address"] || !fields["items[0].quantity"] || len(fields) != 2 {
		t.Errorf("order with two bad fields: %d %s", r.status, r.raw)
	}
	if r := w.do("POST", "/api/v1/products", `{"sku":"A1"}`, "Content-Type", "text/plain"); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d", r.status)
	}
	if after := snapshot(); after != before {
		t.Fatalf("bad input changed state:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	w.invariants()
}

// accountLog is the log of account id's partition (of the default count).
func accountLog(id string) string { return partition.Log(partition.Of(id, partition.Default)) }
