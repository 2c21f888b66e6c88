package moduletest_test

import (
	"database/sql"
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/testenv"
)

// TestAModuleRunsAlone: the catalog module, alone, serves its API behind
// the route table's rules.
func TestAModuleRunsAlone(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, store eventstore.Store, db *sql.DB) {
		h := moduletest.Start(t, catalogmod.Module, store, db, nil)
		body := `{"sku":"H-1","name":"Harness","price":{"amount":100,"currency":"USD"}}`
		if r := h.As("customer").Do("POST", "/api/v1/products", body); r.Status != http.StatusForbidden {
			t.Fatalf("a customer creates a product: %d %s", r.Status, r.Raw)
		}
		r := h.As("merchant").Do("POST", "/api/v1/products", body)
		if r.Status != http.StatusCreated || r.Body["sku"] != "H-1" {
			t.Fatalf("a merchant creates a product: %d %s", r.Status, r.Raw)
		}
		if r := h.As("").Do("GET", "/api/v1/products/"+r.Body["id"].(string), ""); r.Status != http.StatusOK || r.Body["name"] != "Harness" {
			t.Fatalf("anyone reads it: %d %s", r.Status, r.Raw)
		}
		if r := h.As("admin").Do("GET", "/api/v1/orders", ""); r.Status != http.StatusNotFound {
			t.Fatalf("another context's route: %d", r.Status)
		}
	})
}
