package catalogapi

import (
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/money"
)

// ProductRequest names a product.
type ProductRequest struct {
	ProductID string `json:"product_id"`
}

// PricesRequest names products.
type PricesRequest struct {
	ProductIDs []string `json:"product_ids"`
}

// ProductsRequest asks for a page of the catalog's products: those with
// IDs after After ("" from the first), in ID order, at most Limit
// (1–500; 0 asks for 500).
type ProductsRequest struct {
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// ProductsPage is a page of products, each as it is at catalog position
// Position or later (the position of the catalog's writes, as in the
// Agora-Position tokens "catalog.<n>" its API answers and the
// Agora-Position header of its integration events). More says whether
// pages follow (ask again with After the last item's ID).
type ProductsPage struct {
	Items    []Product `json:"items"`
	Position uint64    `json:"position"`
	More     bool      `json:"more,omitempty"`
}

// MaxProductsPage is the largest page Products answers.
const MaxProductsPage = 500

// The calls the catalog answers.
var (
	// ProductExists says whether a product is in the catalog.
	ProductExists = call.Query[ProductRequest, bool]("query.catalog.product-exists", "catalog")
	// Prices answers the current price of each product that exists
	// (those that do not are absent from the map).
	Prices = call.Query[PricesRequest, map[string]money.Money]("query.catalog.prices", "catalog")
	// Products answers a page of every product the catalog holds, for
	// a context that keeps its own model of the catalog to fill it once
	// (ordering, on an empty price model) before the catalog's events
	// keep it up to date.
	Products = call.Query[ProductsRequest, ProductsPage]("query.catalog.products", "catalog")
)
