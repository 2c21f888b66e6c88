package registry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// kvBuses runs f on an embedded NATS server and, when AGORA_TEST_NATS_URL
// is set, on that one (a bucket of its own each run).
func kvBuses(t *testing.T, f func(t *testing.T, b *natsbus.Bus, bucket string)) {
	t.Run("embedded", func(t *testing.T) {
		b, err := natsbus.Open(context.Background(), natsbus.Options{DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		f(t, b, "registry")
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv("AGORA_TEST_NATS_URL")
		if url == "" {
			t.Skip("AGORA_TEST_NATS_URL not set; skipping the external NATS registry test (.ci/run sets it)")
		}
		b, err := natsbus.Open(context.Background(), natsbus.Options{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		bucket := fmt.Sprintf("registry_test_%d", rand.Uint64())
		defer b.JetStream().DeleteKeyValue(context.Background(), bucket) //nolint:errcheck // best effort
		f(t, b, bucket)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two gateways see the instances two services register; one stopped is
// gone at once, one whose process died (no heartbeat, no deregistration)
// is gone within the TTL, and a heartbeating one stays past it.
func TestKVRegistry(t *testing.T) {
	kvBuses(t, func(t *testing.T, b *natsbus.Bus, bucket string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const ttl = 2 * time.Second
		gw1, err := registry.OpenKV(ctx, b.JetStream(), bucket, ttl, nil)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := registry.OpenKV(ctx, b.JetStream(), bucket, ttl, nil)
		if err != nil {
			t.Fatal(err)
		}
		stopA, err := svc.Register(ctx, "ordering", registry.Instance{ID: "a", URL: "http://127.0.0.1:9001", Weight: 1})
		if err != nil {
			t.Fatal(err)
		}
		dying, die := context.WithCancel(ctx)
		if _, err := svc.Register(dying, "ordering", registry.Instance{ID: "b", URL: "http://127.0.0.1:9002", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		stopC, err := svc.Register(ctx, "payments", registry.Instance{ID: "c", URL: "http://127.0.0.1:9003", Weight: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer stopC()
		waitFor(t, "both ordering instances seen", func() bool { return len(gw1.Instances("ordering")) == 2 })
		// A gateway that starts later sees what is there.
		gw2, err := registry.OpenKV(ctx, b.JetStream(), bucket, ttl, nil)
		if err != nil {
			t.Fatal(err)
		}
		if in := gw2.Instances("ordering"); len(in) != 2 || in[0].ID != "a" || in[1].ID != "b" {
			t.Fatalf("a later gateway sees %+v", in)
		}
		if in := gw2.Instances("payments"); len(in) != 1 || in[0].URL != "http://127.0.0.1:9003" {
			t.Fatalf("payments: %+v", in)
		}
		die() // b's process dies: no more heartbeats, no deregistration
		stopA()
		waitFor(t, "a deregistered and b expired", func() bool {
			return len(gw1.Instances("ordering")) == 0 && len(gw2.Instances("ordering")) == 0
		})
		// c kept beating: still there, well past the TTL.
		time.Sleep(2 * ttl)
		if in := gw1.Instances("payments"); len(in) != 1 {
			t.Fatalf("a heartbeating instance expired: %+v", in)
		}
		if _, err := svc.Register(ctx, "bad.cluster", registry.Instance{ID: "x", URL: "http://127.0.0.1:1"}); err == nil {
			t.Fatal("a cluster name with a dot was accepted")
		}
	})
}
