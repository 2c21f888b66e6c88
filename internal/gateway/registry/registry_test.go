package registry_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/agora-commerce/agora/internal/gateway/registry"
)

func TestStatic(t *testing.T) {
	var r registry.Static // the zero value is ready
	if got := r.Instances("catalog"); len(got) != 0 {
		t.Fatalf("empty registry lists %v", got)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.Register("catalog", registry.Instance{ID: "a", URL: "http://127.0.0.1:1"}))
	must(r.Register("catalog", registry.Instance{ID: "b", URL: "http://127.0.0.1:2", Canary: true}))
	must(r.Register("ordering", registry.Instance{ID: "a", URL: "https://ordering.local"}))
	got := r.Instances("catalog")
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" || !got[1].Canary {
		t.Fatalf("Instances = %+v", got)
	}
	// Re-registering an ID replaces it in place, in a new list: a
	// caller's earlier answer does not change under it.
	must(r.Register("catalog", registry.Instance{ID: "a", URL: "http://127.0.0.1:3", Weight: 5}))
	if now := r.Instances("catalog"); len(now) != 2 || now[0].URL != "http://127.0.0.1:3" || now[0].Weight != 5 {
		t.Fatalf("after re-register: %+v", now)
	}
	if got[0].URL != "http://127.0.0.1:1" {
		t.Fatalf("an earlier answer changed: %+v", got)
	}
	held := r.Instances("catalog")
	if !r.Deregister("catalog", "a") || r.Deregister("catalog", "a") || r.Deregister("nope", "a") {
		t.Fatal("Deregister results wrong")
	}
	if got := r.Instances("catalog"); len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("after deregister: %+v", got)
	}
	if len(held) != 2 || held[0].ID != "a" || held[1].ID != "b" {
		t.Fatalf("an answer held across a deregistration changed: %+v", held)
	}
	if c := r.Clusters(); !slices.Equal(c, []string{"catalog", "ordering"}) {
		t.Fatalf("Clusters = %v", c)
	}
}

func TestStaticRejects(t *testing.T) {
	r := registry.NewStatic()
	for _, c := range []struct {
		cluster string
		in      registry.Instance
	}{
		{"", registry.Instance{ID: "a", URL: "http://x"}},
		{"c", registry.Instance{URL: "http://x"}},
		{"c", registry.Instance{ID: "a", URL: "x:1"}},
		{"c", registry.Instance{ID: "a", URL: "ftp://x"}},
		{"c", registry.Instance{ID: "a", URL: "http://"}},
		{"c", registry.Instance{ID: "a", URL: "http://x", Weight: -1}},
	} {
		if err := r.Register(c.cluster, c.in); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("Register(%q, %+v) = %v", c.cluster, c.in, err)
		}
	}
}

func TestStaticConcurrent(t *testing.T) {
	r := registry.NewStatic()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprintf("w%d-%d", w, i%10)
				_ = r.Register("c", registry.Instance{ID: id, URL: "http://127.0.0.1:1"})
				_ = r.Instances("c")
				r.Deregister("c", id)
			}
		}()
	}
	wg.Wait()
	if n := len(r.Instances("c")); n != 0 {
		t.Fatalf("%d instances left", n)
	}
}
