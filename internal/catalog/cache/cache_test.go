package cache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/catalog"
	"github.com/agora-commerce/agora/internal/catalog/cache"
	"github.com/agora-commerce/agora/internal/catalog/catalogapi"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
	"github.com/agora-commerce/agora/money"
)

// source is a catalog that counts its reads; block, if set, holds a read
// until it is closed.
type source struct {
	mu    sync.Mutex
	items map[string]catalog.Product
	reads atomic.Int64
	block chan struct{}
}

func (s *source) Get(_ context.Context, id string) (catalog.Product, error) {
	s.reads.Add(1)
	s.mu.Lock()
	p, ok := s.items[id]
	b := s.block
	s.mu.Unlock()
	if b != nil {
		<-b
	}
	if !ok {
		return catalog.Product{}, catalog.ErrNotFound
	}
	return p, nil
}

func (s *source) set(p catalog.Product) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = map[string]catalog.Product{}
	}
	s.items[p.ID] = p
}

func product(id string, version, cents int64) catalog.Product {
	now := time.Unix(1_800_000_000+version, 0).UTC()
	return catalog.Product{ID: id, SKU: "SKU-" + id, Name: "P " + id, Price: money.New(cents, money.MustCurrency("USD")),
		Version: version, CreatedAt: now, UpdatedAt: now}
}

func newCache(t *testing.T, src cache.Source, opts cache.Options) *cache.Cache {
	t.Helper()
	c, err := cache.New(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCacheAsideReadsTheSourceOnce(t *testing.T) {
	ctx := context.Background()
	src := &source{}
	src.set(product("a", 1, 100))
	c := newCache(t, src, cache.Options{})
	for range 10 {
		p, err := c.Get(ctx, "a")
		if err != nil || p.Price.Amount != 100 {
			t.Fatalf("Get = %+v, %v", p, err)
		}
	}
	prices, err := c.Prices(ctx, []string{"a", "missing"})
	if err != nil || len(prices) != 1 || prices["a"].Amount != 100 {
		t.Fatalf("Prices = %v, %v", prices, err)
	}
	if n := src.reads.Load(); n != 2 { // "a" once, "missing" once
		t.Fatalf("source read %d times, want 2", n)
	}
	// A product that did not exist is not remembered as missing.
	if _, err := c.Get(ctx, "b"); err != catalog.ErrNotFound {
		t.Fatalf("Get(b) = %v, want ErrNotFound", err)
	}
	src.set(product("b", 1, 200))
	if p, err := c.Get(ctx, "b"); err != nil || p.Price.Amount != 200 {
		t.Fatalf("Get(b) after creation = %+v, %v", p, err)
	}
}

func TestPutNeverGoesBackAVersion(t *testing.T) {
	ctx := context.Background()
	c := newCache(t, &source{}, cache.Options{})
	c.Put(ctx, product("a", 2, 250))
	c.Put(ctx, product("a", 1, 100))
	if p, err := c.Get(ctx, "a"); err != nil || p.Version != 2 || p.Price.Amount != 250 {
		t.Fatalf("Get = %+v, %v; want version 2", p, err)
	}
}

// A loader that read the database before a change must not put the old
// product back after the change's event put the new one.
func TestSlowLoaderLosesToANewerEvent(t *testing.T) {
	ctx := context.Background()
	src := &source{block: make(chan struct{})}
	src.set(product("a", 1, 100))
	c := newCache(t, src, cache.Options{})
	got := make(chan catalog.Product)
	go func() {
		p, _ := c.Get(ctx, "a")
		got <- p
	}()
	for src.reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The change commits and its event arrives while the loader is reading.
	deliver(t, c, catalogapi.TypeProductUpdated, product("a", 2, 300))
	close(src.block)
	if p := <-got; p.Version != 2 {
		t.Fatalf("the concurrent Get returned version %d, want 2", p.Version)
	}
	if p, _ := c.Get(ctx, "a"); p.Version != 2 || p.Price.Amount != 300 {
		t.Fatalf("cached %+v, want version 2 at 300", p)
	}
}

func deliver(t *testing.T, c *cache.Cache, typ string, p catalog.Product) {
	t.Helper()
	subj := catalogapi.SubjectProductUpdated
	if typ == catalogapi.TypeProductCreated {
		subj = catalogapi.SubjectProductCreated
	}
	m, err := messaging.NewMessage(subj, typ, catalogapi.Product{ID: p.ID, SKU: p.SKU, Name: p.Name, Price: p.Price,
		Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Handle(context.Background(), messaging.Delivery{Message: m}); err != nil {
		t.Fatal(err)
	}
}

// Two instances, each with its own cache and its own ephemeral consumer
// of the catalog's events: a change published once reaches both.
func TestEveryInstanceFollowsCatalogEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, err := natsbus.Open(ctx, natsbus.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	if err := bus.EnsureStream(ctx, "CATALOG", "catalog.>"); err != nil {
		t.Fatal(err)
	}
	var caches []*cache.Cache
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 2 {
		src := &source{}
		src.set(product("a", 1, 100))
		c := newCache(t, src, cache.Options{})
		if _, err := c.Get(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		caches = append(caches, c)
		wg.Go(func() {
			_ = bus.Subscribe(ctx, messaging.Consumer{Name: "catalog-cache", Stream: "CATALOG", Subjects: cache.Subjects, Ephemeral: true}, c.Handle)
		})
	}
	// Ephemeral consumers start at "new": publish until both saw it.
	p := product("a", 2, 555)
	m, err := messaging.NewMessage(catalogapi.SubjectProductUpdated, catalogapi.TypeProductUpdated, catalogapi.Product{ID: p.ID, SKU: p.SKU,
		Name: p.Name, Price: p.Price, Version: p.Version, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		m.ID = fmt.Sprintf("update-%d", i)
		if err := bus.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, c := range caches {
			if q, _ := c.Get(ctx, "a"); q.Version == 2 && q.Price.Amount == 555 {
				seen++
			}
		}
		if seen == len(caches) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s, %d of %d instances saw the update", seen, len(caches))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With a shared tier, a product one instance loaded is served to another
// without reading its source, and the tier never goes back a version.
func TestSharedTierAcrossInstances(t *testing.T) {
	rdb := testenv.RedisClient(t)
	prefix := testenv.RedisPrefix(t, rdb)
	ctx := context.Background()
	srcA, srcB := &source{}, &source{}
	srcA.set(product("a", 1, 100))
	a := newCache(t, srcA, cache.Options{Redis: rdb, Prefix: prefix})
	b := newCache(t, srcB, cache.Options{Redis: rdb, Prefix: prefix})
	if _, err := a.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	p, err := b.Get(ctx, "a")
	if err != nil || p.Price.Amount != 100 {
		t.Fatalf("instance B: %+v, %v", p, err)
	}
	if n := srcB.reads.Load(); n != 0 {
		t.Fatalf("instance B read its source %d times; want the shared tier to answer", n)
	}
	a.Put(ctx, product("a", 3, 300))
	a.Put(ctx, product("a", 2, 200)) // late and older: ignored by both tiers
	c := newCache(t, &source{}, cache.Options{Redis: rdb, Prefix: prefix})
	if p, err := c.Get(ctx, "a"); err != nil || p.Version != 3 {
		t.Fatalf("a new instance got %+v, %v; want version 3 from the shared tier", p, err)
	}
}
