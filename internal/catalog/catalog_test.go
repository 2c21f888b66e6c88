package catalog_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

var usd = money.MustCurrency("USD")

func valid() catalog.Product {
	return catalog.Product{ID: "p-1", SKU: "MUG-1", Name: "Mug", Description: "A mug", Price: money.New(1299, usd), Version: 3,
		CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)}
}

// fields returns the offending fields err lists, or fails if err is not
// an Invalid error listing them.
func fields(t *testing.T, err error) []string {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok || e.Code != errs.Invalid || len(e.Fields) == 0 {
		t.Fatalf("error %v (%T), want an Invalid error naming fields", err, err)
	}
	var out []string
	for _, f := range e.Fields {
		if f.Message == "" {
			t.Fatalf("field %q without a message", f.Field)
		}
		out = append(out, f.Field)
	}
	return out
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("a valid product: %v", err)
	}
	edge := valid()
	edge.SKU = strings.Repeat("S", 64)
	edge.Name = strings.Repeat("é", 200) // runes, not bytes, are counted
	edge.Description = strings.Repeat("ü", 4000)
	edge.Price = money.New(1_000_000_000_000, usd)
	if err := edge.Validate(); err != nil {
		t.Fatalf("a product at every limit: %v", err)
	}
	for _, sku := range []string{"a", "9", "A.b_c-d", "0-0"} {
		p := valid()
		p.SKU = sku
		if err := p.Validate(); err != nil {
			t.Fatalf("SKU %q: %v", sku, err)
		}
	}
	p := valid()
	p.Description = ""
	if err := p.Validate(); err != nil {
		t.Fatalf("no description: %v", err)
	}

	for _, c := range []struct {
		name   string
		change func(p *catalog.Product)
		want   []string
	}{
		{"no SKU", func(p *catalog.Product) { p.SKU = "" }, []string{"sku"}},
		{"SKU starts with a dash", func(p *catalog.Product) { p.SKU = "-MUG" }, []string{"sku"}},
		{"SKU starts with a dot", func(p *catalog.Product) { p.SKU = ".MUG" }, []string{"sku"}},
		{"SKU with a space", func(p *catalog.Product) { p.SKU = "MUG 1" }, []string{"sku"}},
		{"SKU with a slash", func(p *catalog.Product) { p.SKU = "MUG/1" }, []string{"sku"}},
		{"SKU not ASCII", func(p *catalog.Product) { p.SKU = "MÜG" }, []string{"sku"}},
		{"SKU with a newline", func(p *catalog.Product) { p.SKU = "MUG\n" }, []string{"sku"}},
		{"SKU too long", func(p *catalog.Product) { p.SKU = strings.Repeat("S", 65) }, []string{"sku"}},
		{"no name", func(p *catalog.Product) { p.Name = "" }, []string{"name"}},
		{"blank name", func(p *catalog.Product) { p.Name = " \t\n" }, []string{"name"}},
		{"name too long", func(p *catalog.Product) { p.Name = strings.Repeat("é", 201) }, []string{"name"}},
		{"NUL in name", func(p *catalog.Product) { p.Name = "Mu\x00g" }, []string{"name"}},
		{"name not UTF-8", func(p *catalog.Product) { p.Name = "Mu\xffg" }, []string{"name"}},
		{"description too long", func(p *catalog.Product) { p.Description = strings.Repeat("d", 4001) }, []string{"description"}},
		{"NUL in description", func(p *catalog.Product) { p.Description = "\x00" }, []string{"description"}},
		{"description not UTF-8", func(p *catalog.Product) { p.Description = "\xc3" }, []string{"description"}},
		{"no price", func(p *catalog.Product) { p.Price = money.Money{} }, []string{"price.currency"}},
		{"no currency", func(p *catalog.Product) { p.Price = money.Money{Amount: 100} }, []string{"price.currency"}},
		{"zero price", func(p *catalog.Product) { p.Price = money.New(0, usd) }, []string{"price.amount"}},
		{"negative price", func(p *catalog.Product) { p.Price = money.New(-1, usd) }, []string{"price.amount"}},
		{"price too large", func(p *catalog.Product) { p.Price = money.New(1_000_000_000_001, usd) }, []string{"price.amount"}},
		{"everything wrong", func(p *catalog.Product) {
			p.SKU, p.Name, p.Description, p.Price = "", "", strings.Repeat("d", 4001), money.New(-5, usd)
		}, []string{"sku", "name", "description", "price.amount"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := valid()
			c.change(&p)
			if got := fields(t, p.Validate()); !slices.Equal(got, c.want) {
				t.Fatalf("fields %v, want %v", got, c.want)
			}
		})
	}
}

func TestApply(t *testing.T) {
	p := valid()
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	name, desc, price := "Big mug", "", money.New(1500, money.MustCurrency("EUR"))

	got, err := p.Apply(catalog.Update{Name: &name}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := valid()
	want.Name, want.Version, want.UpdatedAt = name, 4, now.UTC()
	if got != want {
		t.Fatalf("name update:\n%+v\nwant %+v", got, want)
	}
	if got.UpdatedAt.Location() != time.UTC {
		t.Fatalf("updated_at in %v, want UTC", got.UpdatedAt.Location())
	}
	if p != valid() {
		t.Fatalf("Apply changed its receiver: %+v", p)
	}

	got, err = p.Apply(catalog.Update{Description: &desc}, now)
	if err != nil || got.Description != "" || got.Name != "Mug" || got.Price != p.Price || got.Version != 4 {
		t.Fatalf("description update: %+v %v", got, err)
	}
	got, err = p.Apply(catalog.Update{Price: &price}, now)
	if err != nil || got.Price != price || got.Name != "Mug" || got.Description != "A mug" || got.Version != 4 {
		t.Fatalf("price update: %+v %v", got, err)
	}
	got, err = p.Apply(catalog.Update{Name: &name, Description: &desc, Price: &price}, now)
	if err != nil || got.Name != name || got.Description != desc || got.Price != price || got.Version != 4 ||
		got.ID != p.ID || got.SKU != p.SKU || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("full update: %+v %v", got, err)
	}

	// Nothing to change.
	if _, err := p.Apply(catalog.Update{}, now); !errors.Is(err, catalog.ErrNoChange) || !slices.Equal(fields(t, err), []string{"body"}) {
		t.Fatalf("empty update: %v", err)
	}

	// A bad value refuses the whole update, naming every bad field.
	blank, long := "  ", strings.Repeat("x", 4001)
	zero, negative := money.New(0, usd), money.New(-1, usd)
	for _, c := range []struct {
		name string
		u    catalog.Update
		want []string
	}{
		{"blank name", catalog.Update{Name: &blank}, []string{"name"}},
		{"long description", catalog.Update{Description: &long}, []string{"description"}},
		{"zero price", catalog.Update{Price: &zero}, []string{"price.amount"}},
		{"good name, bad price", catalog.Update{Name: &name, Price: &negative}, []string{"price.amount"}},
		{"all bad", catalog.Update{Name: &blank, Description: &long, Price: &money.Money{}}, []string{"name", "description", "price.currency"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := p.Apply(c.u, now)
			if f := fields(t, err); !slices.Equal(f, c.want) {
				t.Fatalf("fields %v, want %v", f, c.want)
			}
			if got != (catalog.Product{}) {
				t.Fatalf("a refused update returned %+v", got)
			}
			if p != valid() {
				t.Fatalf("a refused update changed its receiver: %+v", p)
			}
		})
	}

	// Versions count updates.
	q := valid()
	for i := range 3 {
		if q, err = q.Apply(catalog.Update{Name: &name}, now.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if q.Version != 6 || !q.UpdatedAt.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("after three updates: version %d, updated %v", q.Version, q.UpdatedAt)
	}
}
