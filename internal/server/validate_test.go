package server_test

import (
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/server"
)

// TestTheEdgeRefusesInvalidRequests: with every service failing (503),
// a request the OpenAPI document rejects still gets the answer its
// service would have given — from the gateway — and a valid one reaches
// the (failing) service.
func TestTheEdgeRefusesInvalidRequests(t *testing.T) {
	c, srv := bootEdge(t, func(*server.Config) {})
	id, _ := c.open("vera", 100)
	for _, name := range []string{"payments", "ordering", "inventory", "catalog"} {
		srv.InjectFault(name, true)
	}
	dep := "/api/v1/accounts/" + id + "/deposits"
	address := map[string]any{"street": "1 Main St", "city": "Springfield", "zip_code": "62701", "country": "US"}
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"unknown field", "POST", dep, `{"amount":5,"admin":true}`, 400, "admin"},
		{"float amount", "POST", dep, `{"amount":{"amount":5.5,"currency":"USD"}}`, 400, "amount.amount"},
		{"lower-case currency", "POST", dep, `{"amount":{"amount":5,"currency":"usd"}}`, 400, "amount.currency"},
		{"negative amount", "POST", dep, `{"amount":{"amount":-5,"currency":"USD"}}`, 422, "amount.amount"},
		{"text/plain", "POST", dep, nil, 415, ""},
		{"negative quantity", "POST", "/api/v1/orders", map[string]any{"items": []any{map[string]any{"product_id": "p", "quantity": -1}},
			"shipping_address": address, "payment_account_id": id}, 400, "items[0].quantity"},
		{"restock zero", "POST", "/api/v1/inventory/p/restock", map[string]any{"quantity": 0}, 422, "quantity"},
		{"negative price", "POST", "/api/v1/products", map[string]any{"sku": "NEG", "name": "Neg",
			"price": map[string]any{"amount": -1, "currency": "USD"}}, 400, "price.amount"},
		{"bad limit", "GET", "/api/v1/accounts?limit=0", nil, 400, "limit"},
		{"valid: reaches the failing service", "POST", dep, `{"amount":5}`, 503, ""},
	} {
		var r response
		if tc.name == "text/plain" {
			r = c.do(tc.method, tc.path, `{"amount":5}`, "Content-Type", "text/plain")
		} else {
			r = c.do(tc.method, tc.path, tc.body)
		}
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.raw, tc.status)
			continue
		}
		if tc.field == "" {
			continue
		}
		errors, _ := r.body["errors"].([]any)
		if len(errors) != 1 || errors[0].(map[string]any)["field"] != tc.field {
			t.Errorf("%s: %s, want the field %s", tc.name, r.raw, tc.field)
		}
	}
	// An unauthenticated invalid request is still a 401.
	if r := c.as("").do("POST", dep, `{"amount":-5,"admin":true}`); r.status != http.StatusUnauthorized {
		t.Errorf("anonymous: %d %s", r.status, r.raw)
	}
}
