// Package catalog is the catalog bounded context: products with prices,
// kept as plain rows (no event sourcing) with an outbox written in the
// same transaction as every change, so each change is published exactly
// as it committed. The domain rules are plain Go; Store is the SQL adapter.
package catalog

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// Product is a product for sale.
type Product struct {
	ID          string      `json:"id"`
	SKU         string      `json:"sku"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Price       money.Money `json:"price"`
	Version     int64       `json:"version"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// Errors.
var (
	ErrNotFound   = &errs.Error{Code: errs.NotFound, Reason: "product_not_found", Message: "no such product"}
	ErrSKUTaken   = errs.Rule("sku_taken", "another product has this SKU")
	ErrIDTaken    = errs.Rule("product_exists", "a product with this ID exists")
	ErrNoChange   = errs.Fields(errs.FieldError{Field: "body", Message: "must set at least one of price, name, description"})
	skuPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	maxName       = 200
	maxDesc       = 4000
	maxPriceMinor = int64(1_000_000_000_000)
)

// Validate checks p's fields and lists every offending one.
func (p Product) Validate() error {
	var bad []errs.FieldError
	if !skuPattern.MatchString(p.SKU) {
		bad = append(bad, errs.FieldError{Field: "sku", Message: "must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit"})
	}
	bad = append(bad, checkText("name", p.Name, maxName, true)...)
	bad = append(bad, checkText("description", p.Description, maxDesc, false)...)
	bad = append(bad, checkPrice(p.Price)...)
	if len(bad) > 0 {
		return errs.Fields(bad...)
	}
	return nil
}

func checkText(field, v string, limit int, required bool) []errs.FieldError {
	switch {
	case required && strings.TrimSpace(v) == "":
		return []errs.FieldError{{Field: field, Message: "is required"}}
	case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
		return []errs.FieldError{{Field: field, Message: "must be valid UTF-8 text"}}
	case utf8.RuneCountInString(v) > limit:
		return []errs.FieldError{{Field: field, Message: "is too long"}}
	}
	return nil
}

func checkPrice(m money.Money) []errs.FieldError {
	switch {
	case m.Currency.IsZero():
		return []errs.FieldError{{Field: "price.currency", Message: "is required"}}
	case m.Amount <= 0:
		return []errs.FieldError{{Field: "price.amount", Message: "must be greater than zero"}}
	case m.Amount > maxPriceMinor:
		return []errs.FieldError{{Field: "price.amount", Message: "is too large"}}
	}
	return nil
}

// Update is a change to a product; nil fields stay as they are.
type Update struct {
	Name        *string
	Description *string
	Price       *money.Money
}

// Apply returns p changed by u, validated.
func (p Product) Apply(u Update, now time.Time) (Product, error) {
	if u.Name == nil && u.Description == nil && u.Price == nil {
		return Product{}, ErrNoChange
	}
	var bad []errs.FieldError
	if u.Name != nil {
		bad = append(bad, checkText("name", *u.Name, maxName, true)...)
		p.Name = *u.Name
	}
	if u.Description != nil {
		bad = append(bad, checkText("description", *u.Description, maxDesc, false)...)
		p.Description = *u.Description
	}
	if u.Price != nil {
		bad = append(bad, checkPrice(*u.Price)...)
		p.Price = *u.Price
	}
	if len(bad) > 0 {
		return Product{}, errs.Fields(bad...)
	}
	p.Version++
	p.UpdatedAt = now.UTC()
	return p, nil
}
