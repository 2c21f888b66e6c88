// Package catalogmod is the catalog context as a module: products and
// prices as SQL rows with an outbox, read through a cache that its own
// events keep fresh on every instance, the product API, and the product,
// price and catalog-page queries other contexts ask.
package catalogmod

import (
	"context"
	"errors"

	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/catalog/api"
	"github.com/agora-commerce/agora/internal/catalog/cache"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/module"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/telemetry"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

// Module declares the catalog module.
var Module = module.Def{Name: "catalog", Stream: module.CatalogStream, Subjects: []string{"catalog.>"}, New: New}

// New builds the catalog module.
func New(ctx context.Context, p *module.Platform) (*module.Module, error) {
	store, err := catalog.OpenStore(ctx, p.DB, p.Settings.Postgres)
	if err != nil {
		return nil, err
	}
	opts := cache.Options{}
	if p.Redis != nil { // a nil *redis.Client is not a nil interface
		opts.Redis = p.Redis
	}
	products, err := cache.New(store, opts)
	if err != nil {
		return nil, err
	}
	p.Metrics.Cache("catalog", func() telemetry.CacheStats {
		s := products.Stats()
		return telemetry.CacheStats{Hits: s.Hits, Misses: s.Misses, SharedLoads: s.SharedLoads, SourceLoads: s.SourceLoads}
	})
	return &module.Module{
		Routes: api.New(store, products).Register,
		// Every instance follows the catalog's events to keep its own
		// cache fresh.
		Consumers: []module.Consumer{{Consumer: messaging.Consumer{Name: "catalog-cache", Stream: module.CatalogStream,
			Subjects: cache.Subjects, Ephemeral: true}, Handle: products.Handle}},
		Answers:  append(Answers(products), Snapshots(store)),
		Outboxes: []module.Outbox{{Name: "catalog", Log: store.Outbox()}},
		Service:  store,
	}, nil
}

// Snapshots answers catalogapi.Products from store (not the cache: a
// page is read as of a catalog position, see catalog.Store.Snapshot).
func Snapshots(store *catalog.Store) call.Answer {
	return catalogapi.Products.Answer(func(ctx context.Context, r catalogapi.ProductsRequest) (catalogapi.ProductsPage, error) {
		limit := r.Limit
		if limit <= 0 || limit > catalogapi.MaxProductsPage {
			limit = catalogapi.MaxProductsPage
		}
		items, pos, more, err := store.Snapshot(ctx, r.After, limit)
		if err != nil {
			return catalogapi.ProductsPage{}, err
		}
		page := catalogapi.ProductsPage{Items: make([]catalogapi.Product, len(items)), Position: pos, More: more}
		for i, p := range items {
			page.Items[i] = catalogapi.Product{ID: p.ID, SKU: p.SKU, Name: p.Name, Description: p.Description, Price: p.Price,
				Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
		}
		return page, nil
	})
}

// Answers are the queries the catalog answers, from products.
func Answers(products *cache.Cache) []call.Answer {
	return []call.Answer{
		catalogapi.ProductExists.Answer(func(ctx context.Context, r catalogapi.ProductRequest) (bool, error) {
			_, err := products.Get(ctx, r.ProductID)
			if errors.Is(err, catalog.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}),
		catalogapi.Prices.Answer(func(ctx context.Context, r catalogapi.PricesRequest) (map[string]money.Money, error) {
			return products.Prices(ctx, r.ProductIDs)
		}),
	}
}
