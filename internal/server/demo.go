package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// Demo is what the demo seed created or found: who can log in, and how.
type Demo = module.Demo

// Demo returns the demo users if the server seeded them (Config.SeedDemo).
func (s *Server) Demo() (Demo, bool) {
	if s.seeded == nil {
		return Demo{}, false
	}
	return *s.seeded, true
}

// demoFunds is what the demo customer's account starts with: $1,000.00.
const demoFunds = 100_000

// demoProducts is the demo catalog: SKU, name, price in cents, stock.
var demoProducts = []struct {
	sku, name string
	cents     int64
	stock     int64
}{
	{"MUG-1", "Agora mug", 1250, 100},
	{"TEE-1", "Agora t-shirt", 2400, 50},
	{"CAP-1", "Agora cap", 1800, 40},
	{"BOOK-DDD", "Domain-Driven Design, used", 4500, 5},
	{"STICKER-1", "Sticker pack", 300, 1000},
}

// seedDemo fills an empty platform: identity creates the demo tenant's
// merchant and customer; then, through the platform's own API as those
// users, the customer's account is funded the first time, and the demo
// catalog is created and stocked (products that exist are left alone).
func (s *Server) seedDemo(ctx context.Context) error {
	var d Demo
	for _, m := range s.mods {
		if m.SeedDemo == nil {
			continue
		}
		var err error
		if d, err = m.SeedDemo(ctx); err != nil {
			return err
		}
		s.seeded = &d
	}
	if s.seeded == nil {
		return nil
	}
	login := func(email, password string) (string, error) {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_, err := s.api(ctx, "POST", "/api/v1/auth/token", "", map[string]string{"email": email, "password": password}, &tok, http.StatusOK)
		return tok.AccessToken, err
	}
	customer, err := login(d.CustomerEmail, d.CustomerPassword)
	if err != nil {
		return err
	}
	merchant, err := login(d.MerchantEmail, d.MerchantPassword)
	if err != nil {
		return err
	}
	usd := func(cents int64) map[string]any { return map[string]any{"amount": cents, "currency": "USD"} }
	if d.Created {
		if _, err := s.api(ctx, "POST", "/api/v1/accounts/"+d.CustomerAccountID+"/deposits", customer,
			map[string]any{"amount": usd(demoFunds)}, nil, http.StatusOK); err != nil {
			return err
		}
	}
	for _, p := range demoProducts {
		var created struct {
			ID string `json:"id"`
		}
		status, err := s.api(ctx, "POST", "/api/v1/products", merchant, map[string]any{"sku": p.sku, "name": p.name, "price": usd(p.cents)},
			&created, http.StatusCreated, http.StatusConflict)
		if err != nil {
			return err
		}
		if status == http.StatusConflict {
			continue // the SKU exists: seeded before
		}
		if _, err := s.api(ctx, "POST", "/api/v1/inventory/"+created.ID+"/restock", merchant, map[string]any{"quantity": p.stock},
			nil, http.StatusOK); err != nil {
			return err
		}
	}
	return nil
}

// api calls the platform's API in process, as a client would through
// the gateway — the route's service, behind its own guard — and decodes
// the answer into out. An answer with a status other than want is an
// error.
func (s *Server) api(ctx context.Context, method, path, token string, body, out any, want ...int) (int, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rt, ok := s.routes.Match(req)
	var svc *service
	for _, x := range s.services {
		if ok && x.name == rt.Cluster {
			svc = x
		}
	}
	if svc == nil {
		return 0, fmt.Errorf("%s %s: no service routes it", method, path)
	}
	rec := httptest.NewRecorder()
	httpapi.RequestID(s.guard(svc)).ServeHTTP(rec, req)
	for _, w := range want {
		if rec.Code == w {
			if out != nil && rec.Code < 300 {
				if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
					return rec.Code, fmt.Errorf("%s %s: %w", method, path, err)
				}
			}
			return rec.Code, nil
		}
	}
	return rec.Code, fmt.Errorf("%s %s: %d %s", method, path, rec.Code, rec.Body.Bytes())
}
