// Package demo fills an empty platform with its demo data through the
// platform's own API, as a client would: the demo customer's funds and
// the demo catalog with its stock. (Identity creates the demo tenant's
// users: module.Module.SeedDemo.)
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"

	"github.com/agora-commerce/agora/internal/module"
)

// API calls the platform's API as a client with token ("" for none),
// decodes a success into out (if not nil), and answers the status, or an
// error when the status is none of want.
type API func(ctx context.Context, method, path, token string, body, out any, want ...int) (int, error)

// Funds is what the demo customer's account starts with: $1,000.00.
const Funds = 100_000

// Products is the demo catalog: SKU, name, price in cents, stock.
var Products = []struct {
	SKU, Name string
	Cents     int64
	Stock     int64
}{
	{"MUG-1", "Agora mug", 1250, 100},
	{"TEE-1", "Agora t-shirt", 2400, 50},
	{"CAP-1", "Agora cap", 1800, 40},
	{"BOOK-DDD", "Domain-Driven Design, used", 4500, 5},
	{"STICKER-1", "Sticker pack", 300, 1000},
}

// Seed, through api with d's tokens, funds the customer's account the
// first time (d.Created) and creates and stocks the demo catalog as the
// merchant (products whose SKU exists are left alone).
func Seed(ctx context.Context, d module.Demo, api API) error {
	customer, merchant := d.CustomerToken, d.MerchantToken
	usd := func(cents int64) map[string]any { return map[string]any{"amount": cents, "currency": "USD"} }
	if d.Created {
		if _, err := api(ctx, "POST", "/api/v1/accounts/"+d.CustomerAccountID+"/deposits", customer,
			map[string]any{"amount": usd(Funds)}, nil, http.StatusOK); err != nil {
			return err
		}
	}
	for _, p := range Products {
		var created struct {
			ID string `json:"id"`
		}
		status, err := api(ctx, "POST", "/api/v1/products", merchant, map[string]any{"sku": p.SKU, "name": p.Name, "price": usd(p.Cents)},
			&created, http.StatusCreated, http.StatusConflict)
		if err != nil {
			return err
		}
		if status == http.StatusConflict {
			continue // the SKU exists: seeded before
		}
		if _, err := api(ctx, "POST", "/api/v1/inventory/"+created.ID+"/restock", merchant, map[string]any{"quantity": p.Stock},
			nil, http.StatusOK); err != nil {
			return err
		}
	}
	return nil
}

// InProcess is the API served in process by the handler route picks for
// each request (nil: none serves it).
func InProcess(route func(*http.Request) http.Handler) API {
	return func(ctx context.Context, method, path, token string, body, out any, want ...int) (int, error) {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		h := route(req)
		if h == nil {
			return 0, fmt.Errorf("%s %s: nothing serves it", method, path)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !slices.Contains(want, rec.Code) {
			return rec.Code, fmt.Errorf("%s %s: %d %s", method, path, rec.Code, rec.Body.Bytes())
		}
		if out != nil && rec.Code < 300 {
			if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
				return rec.Code, fmt.Errorf("%s %s: %w", method, path, err)
			}
		}
		return rec.Code, nil
	}
}
