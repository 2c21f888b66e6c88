// Package catalogapi is the catalog context's published language: the
// integration events it publishes, version 1.
package catalogapi

import (
	"time"

	"github.com/agora-commerce/agora/money"
)

// Subjects and types of the catalog's integration events.
const (
	SubjectProductCreated = "catalog.product.created"
	SubjectProductUpdated = "catalog.product.updated"

	TypeProductCreated = "catalog.ProductCreated.v1"
	TypeProductUpdated = "catalog.ProductUpdated.v1"
)

// Product is the body of ProductCreated and ProductUpdated: the product
// as it is after the change.
type Product struct {
	ID          string      `json:"id"`
	SKU         string      `json:"sku"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Price       money.Money `json:"price"`
	Version     int64       `json:"version"`
	// CreatedAt and UpdatedAt were added to v1 compatibly (a consumer
	// that does not know them ignores them).
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}
