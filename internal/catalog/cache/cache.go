// Package cache reads the catalog cache-aside: products are looked up in
// an in-process cache (otter), then, when one is configured, in a tier
// shared by every instance (Redis), and only then in the catalog's
// database, filling the tiers on the way back.
//
// Products change rarely and are read on every page and every order, so
// the cache is kept fresh by the catalog's own writes and events rather
// than by short lifetimes:
//
//   - a write in this process puts the new product in the tiers at once
//     (write-through): its writer reads its own write;
//   - every instance consumes the catalog's ProductCreated/ProductUpdated
//     integration events and puts the product they carry, so a change
//     made on another instance reaches this one as fast as the bus does;
//   - a put never replaces a newer version by an older one (each product
//     carries a version), so a slow loader that read the database before
//     a change cannot bring back the old price after the event put the
//     new one;
//   - entries still expire (TTL, one hour by default) as a bound on what
//     a lost event could cost.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/money"
)

// Source is where products come from on a miss: the catalog's store.
type Source interface {
	Get(ctx context.Context, id string) (catalog.Product, error)
}

// Options configure a Cache.
type Options struct {
	// Size caps the products held in process (default 100,000).
	Size int
	// TTL bounds how long an entry lives in either tier (default 1h).
	TTL time.Duration
	// Redis, if set, is the shared tier.
	Redis redis.UniversalClient
	// Prefix namespaces the shared tier's keys (default "agora:catalog:").
	Prefix string
}

// Cache is a cache-aside reader of products. It is safe for concurrent use.
type Cache struct {
	src    Source
	local  *otter.Cache[string, catalog.Product]
	shared redis.UniversalClient
	prefix string
	ttl    time.Duration
	loads  singleflight.Group
	// Lookups (Get) answered in process, and not; loads of the misses
	// answered by the shared tier, and by the source.
	hits, misses, sharedLoads, sourceLoads atomic.Uint64
}

// Stats are a cache's counts since it was made.
type Stats struct {
	// Hits are the lookups answered from process memory; Misses, the
	// others.
	Hits, Misses uint64
	// SharedLoads are the loads of misses the shared tier answered;
	// SourceLoads, those that went to the source. Concurrent misses of one
	// product share a load.
	SharedLoads, SourceLoads uint64
}

// Stats returns the cache's counts, for metrics.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), SharedLoads: c.sharedLoads.Load(), SourceLoads: c.sourceLoads.Load()}
}

// New returns a cache in front of src.
func New(src Source, opts Options) (*Cache, error) {
	if opts.Size <= 0 {
		opts.Size = 100_000
	}
	if opts.TTL <= 0 {
		opts.TTL = time.Hour
	}
	if opts.Prefix == "" {
		opts.Prefix = "agora:catalog:"
	}
	local, err := otter.New(&otter.Options[string, catalog.Product]{
		MaximumSize:      opts.Size,
		ExpiryCalculator: otter.ExpiryWriting[string, catalog.Product](opts.TTL),
	})
	if err != nil {
		return nil, fmt.Errorf("catalog cache: %w", err)
	}
	return &Cache{src: src, local: local, shared: opts.Redis, prefix: opts.Prefix, ttl: opts.TTL}, nil
}

// Get returns product id: from process memory, else the shared tier,
// else the source. Concurrent misses on one product load it once.
//
// The request's span says whether the process's tier had it
// (agora.cache.hit); a miss's load is a span of its own.
func (c *Cache) Get(ctx context.Context, id string) (catalog.Product, error) {
	p, hit, err := c.get(ctx, id)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Bool("agora.cache.hit", hit))
	}
	return p, err
}

// get is Get, saying whether the process's tier had the product.
func (c *Cache) get(ctx context.Context, id string) (catalog.Product, bool, error) {
	if p, ok := c.local.GetIfPresent(id); ok {
		c.hits.Add(1)
		return p, true, nil
	}
	c.misses.Add(1)
	v, err, _ := c.loads.Do(id, func() (any, error) {
		p, err := c.load(ctx, id)
		if err != nil {
			return catalog.Product{}, err
		}
		// Put keeps a newer version that an event brought in meanwhile.
		return c.put(p), nil
	})
	if err != nil {
		return catalog.Product{}, false, err
	}
	return v.(catalog.Product), false, nil
}

var tracer = otel.Tracer("github.com/agora-commerce/agora/catalog/cache")

// load fills a local miss from the shared tier or the source, in a span
// of its own (within a sampled trace) naming the tier that had it. A
// product that does not exist is not cached (it may be created any
// moment).
func (c *Cache) load(ctx context.Context, id string) (_ catalog.Product, err error) {
	if trace.SpanContextFromContext(ctx).IsSampled() {
		var span trace.Span
		ctx, span = tracer.Start(ctx, "catalog cache load", trace.WithAttributes(attribute.String("agora.product_id", id)))
		defer func() {
			if err != nil && !errors.Is(err, catalog.ErrNotFound) {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	if c.shared != nil {
		raw, err := c.shared.Get(ctx, c.prefix+id).Bytes()
		if err == nil {
			var p catalog.Product
			if json.Unmarshal(raw, &p) == nil && p.ID == id {
				trace.SpanFromContext(ctx).SetAttributes(attribute.String("agora.cache.tier", "shared"))
				c.sharedLoads.Add(1)
				return p, nil
			}
		}
		// A shared tier that is down or holds garbage costs only speed.
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("agora.cache.tier", "source"))
	c.sourceLoads.Add(1)
	p, err := c.src.Get(ctx, id)
	if err != nil {
		return catalog.Product{}, err
	}
	c.putShared(ctx, p)
	return p, nil
}

// Prices implements the ordering context's catalog port: the price of
// each existing product in ids.
func (c *Cache) Prices(ctx context.Context, ids []string) (map[string]money.Money, error) {
	out := make(map[string]money.Money, len(ids))
	hits := 0
	defer func() {
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(attribute.Int("agora.cache.hits", hits), attribute.Int("agora.cache.misses", len(ids)-hits))
		}
	}()
	for _, id := range ids {
		p, hit, err := c.get(ctx, id)
		if hit {
			hits++
		}
		if errors.Is(err, catalog.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = p.Price
	}
	return out, nil
}

// Put records p in both tiers unless a newer version is there already.
// The catalog's writers call it after a committed change (write-through).
func (c *Cache) Put(ctx context.Context, p catalog.Product) {
	c.put(p)
	c.putShared(ctx, p)
}

// put records p in process unless a newer version is there, and returns
// the version kept.
func (c *Cache) put(p catalog.Product) catalog.Product {
	kept, _ := c.local.Compute(p.ID, func(old catalog.Product, found bool) (catalog.Product, otter.ComputeOp) {
		if found && old.Version >= p.Version {
			return old, otter.CancelOp
		}
		return p, otter.WriteOp
	})
	if kept.ID == "" {
		return p
	}
	return kept
}

// putIfNewer sets a key to the product unless the stored one's version is
// at least as new: one atomic step in Redis.
var putIfNewer = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, v = pcall(function() return cjson.decode(cur).version end)
  if ok and tonumber(v) and tonumber(v) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1`)

func (c *Cache) putShared(ctx context.Context, p catalog.Product) {
	if c.shared == nil {
		return
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return
	}
	// Best effort: the local tier and the database stay right without it.
	_ = putIfNewer.Run(ctx, c.shared, []string{c.prefix + p.ID}, raw, p.Version, c.ttl.Milliseconds()).Err()
}

// Subjects are the catalog events the cache follows.
var Subjects = []string{catalogapi.SubjectProductCreated, catalogapi.SubjectProductUpdated}

// Handle applies a catalog integration event: the product it carries
// replaces an older cached version in both tiers. Subscribe it on every
// instance with its own (ephemeral) consumer.
func (c *Cache) Handle(ctx context.Context, d messaging.Delivery) error {
	switch d.Message.Type {
	case catalogapi.TypeProductCreated, catalogapi.TypeProductUpdated:
	default:
		return nil
	}
	e, err := messaging.Decode[catalogapi.Product](d.Message)
	if err != nil {
		return fmt.Errorf("%w: %w", messaging.ErrPermanent, err)
	}
	if e.UpdatedAt.IsZero() { // an event from before v1 carried timestamps
		c.local.Invalidate(e.ID)
		return nil
	}
	c.Put(ctx, catalog.Product{ID: e.ID, SKU: e.SKU, Name: e.Name, Description: e.Description, Price: e.Price,
		Version: e.Version, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt})
	return nil
}
