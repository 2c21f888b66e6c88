package api_test

import (
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/testenv"
)

// FuzzInventoryWrites sends arbitrary bodies to the restock of a known
// product (moduletest.FuzzWrites: never a 5xx, refusals are problems, a
// 2xx only for JSON).
func FuzzInventoryWrites(f *testing.F) {
	store, db := testenv.SQLite(f)
	h, _ := start(f, store, db, "p-fuzz")
	m := h.As("merchant")
	if r := m.Do("POST", "/api/v1/inventory/p-fuzz/restock", `{"quantity":5}`); r.Status != http.StatusOK {
		f.Fatalf("restock: %d %s", r.Status, r.Raw)
	}
	moduletest.FuzzWrites(f, h, []moduletest.Write{
		{Method: "POST", Path: "/api/v1/inventory/p-fuzz/restock", As: m},
		{Method: "POST", Path: "/api/v1/inventory/ghost/restock", As: m},
	},
		`{"quantity":5}`, `{"quantity":1000000000}`, `{"quantity":0}`, `{"quantity":-1}`, `{"quantity":1.5}`,
		`{"quantity":"1"}`, `{"quantity":9223372036854775807}`, `{"quantity":9223372036854775808}`,
		`{"quantity":1,"sku":"x"}`, `{}`, `[]`, `null`, ``, `{"quantity":`, `{"quantity":1}{"quantity":1}`,
	)
}
