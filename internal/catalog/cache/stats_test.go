package cache_test

import (
	"context"
	"errors"
	"testing"

	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/catalog/cache"
)

func TestStatsCountHitsMissesAndLoads(t *testing.T) {
	src := &source{}
	src.set(product("p1", 1, 100))
	c := newCache(t, src, cache.Options{})
	ctx := context.Background()
	for range 3 {
		if _, err := c.Get(ctx, "p1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("missing product: %v", err)
	}
	// p1: a miss loaded from the source, then two hits; nope: a miss
	// loaded (in vain) from the source.
	if got, want := c.Stats(), (cache.Stats{Hits: 2, Misses: 2, SourceLoads: 2}); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}
