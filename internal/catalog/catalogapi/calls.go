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

// The calls the catalog answers.
var (
	// ProductExists says whether a product is in the catalog.
	ProductExists = call.Query[ProductRequest, bool]("query.catalog.product-exists", "catalog")
	// Prices answers the current price of each product that exists
	// (those that do not are absent from the map).
	Prices = call.Query[PricesRequest, map[string]money.Money]("query.catalog.prices", "catalog")
)
