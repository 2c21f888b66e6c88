package api_test

import (
	"net/http"
	"testing"

	"github.com/agora-commerce/agora/internal/catalog/catalogmod"
	"github.com/agora-commerce/agora/internal/module/moduletest"
	"github.com/agora-commerce/agora/internal/testenv"
)

// FuzzCatalogWrites sends arbitrary bodies to the catalog's writes
// (moduletest.FuzzWrites: never a 5xx, refusals are problems, a 2xx only
// for JSON).
func FuzzCatalogWrites(f *testing.F) {
	store, db := testenv.SQLite(f)
	h := moduletest.Start(f, catalogmod.Module, store, db, nil)
	m := h.As("merchant")
	if r := m.Do("POST", "/api/v1/products", `{"id":"p-fuzz","sku":"FUZZ-1","name":"Fuzz","price":{"amount":100,"currency":"USD"}}`); r.Status != http.StatusCreated {
		f.Fatalf("create p-fuzz: %d %s", r.Status, r.Raw)
	}
	moduletest.FuzzWrites(f, h, []moduletest.Write{
		{Method: "POST", Path: "/api/v1/products", As: m},
		{Method: "PUT", Path: "/api/v1/products/p-fuzz", As: m},
	},
		product("LAMP-1", "Lamp", 2500),
		`{"id":"p-x","sku":"CUP-1","name":"Cup","price":{"amount":500,"currency":"EUR"}}`,
		`{"name":"Lamp","description":"Warm","price":{"amount":100,"currency":"JPY"}}`,
		`{"price":{"amount":3500,"currency":"USD"}}`,
		`{"name":"Desk lamp"}`,
		`{"price":{"amount":9223372036854775807,"currency":"USD"}}`,
		`{"price":{"amount":9223372036854775808,"currency":"USD"}}`,
		`{"price":{"amount":1e3,"currency":"USD"}}`,
		`{"price":null}`, `{"version":9}`, `{}`, `[]`, `null`, `""`, ``, `{"name":"\u0000"}`,
		`{"id":"..","sku":"S","name":"N","price":{"amount":1,"currency":"USD"}}`,
		`{"name":"<script>alert(1)</script>","sku":"X","price":{"amount":1,"currency":"usd"}}`,
		`{"name":"a"}{"name":"b"}`, `{"name":`, "\xff\xfe",
	)
}
