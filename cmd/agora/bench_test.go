package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agora-commerce/agora/internal/bench"
)

// TestBenchCheckoutDistributed runs `agora bench checkout --distributed`
// small: the benchmark starts the platform as ten processes (this test
// binary as the agora command) on PostgreSQL, NATS and Redis, places 200
// orders through the gateway and reports each process's CPU. Every order
// ends, none is stuck, and the run's schemas and NATS namespace are gone
// afterwards. No timing thresholds: the figures are the benchmark's.
func TestBenchCheckoutDistributed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ten processes")
	}
	pg, natsURL, redisURL := os.Getenv("AGORA_TEST_POSTGRES_URL"), os.Getenv("AGORA_TEST_NATS_URL"), os.Getenv("AGORA_TEST_REDIS_URL")
	if pg == "" || natsURL == "" {
		t.Skip("AGORA_TEST_POSTGRES_URL or AGORA_TEST_NATS_URL not set; skipping the distributed benchmark (.ci/run sets them)")
	}
	const orders = 200
	var stdout, stderr bytes.Buffer
	m := NewMain()
	m.Stdout, m.Stderr = &stdout, &stderr
	args := []string{"bench", "checkout", "--distributed", "--json", "--orders", "200", "--postgres", pg, "--nats", natsURL}
	if redisURL != "" {
		args = append(args, "--redis", redisURL)
	}
	if err := m.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	// Small, to keep the test short; the processes are this binary.
	m.checkout.Products, m.checkout.Customers = 40, 100
	m.checkout.Distributed.Env = []string{"AGORA_TEST_RUN_MAIN=1"}
	err := m.Run(context.Background())
	t.Logf("the benchmark's progress:\n%s", stderr.String())
	if err != nil {
		t.Fatal(err)
	}
	var res bench.CheckoutResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	if !res.Distributed || res.Confirmed+res.Cancelled != orders || res.Stuck != 0 {
		t.Errorf("distributed %v, %d confirmed + %d cancelled of %d orders, %d stuck", res.Distributed, res.Confirmed, res.Cancelled, orders, res.Stuck)
	}
	if res.Confirmed == 0 {
		t.Error("no order was confirmed")
	}
	var names []string
	for _, p := range res.Processes {
		names = append(names, p.Name)
		if p.PID <= 0 || p.CPUS < 0 {
			t.Errorf("process %+v", p)
		}
	}
	want := []string{"identity", "catalog", "inventory", "shipping", "payments", "ordering", "bff", "payments-2", "ordering-2", "gateway"}
	if !slices.Equal(names, want) {
		t.Errorf("processes %q, want %q", names, want)
	}
	if res.Client == nil {
		t.Error("no CPU entry of the benchmark's own clients")
	}
	if res.CPUNote == "" {
		// Linux: every process read its CPU; the busiest did work.
		var most float64
		for _, p := range res.Processes {
			most = max(most, p.CPUS)
		}
		if most == 0 {
			t.Errorf("no process used any CPU: %+v", res.Processes)
		}
	}

	// The run's schemas and its NATS namespace are gone.
	found := regexp.MustCompile(`PostgreSQL schemas (\w+)_\*, NATS namespace (\w+);`).FindStringSubmatch(stderr.String())
	if found == nil {
		t.Fatal("the progress does not say which schemas and namespace the run used")
	}
	schema, ns := found[1], found[2]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname = $1 OR starts_with(nspname, $1 || '_')`, schema).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d schemas %s_* left", left, schema)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams := js.StreamNames(ctx)
	for name := range streams.Name() {
		if strings.HasPrefix(name, strings.ToUpper(ns)+"_") || strings.HasPrefix(name, "KV_"+ns+"_") {
			t.Errorf("stream %s left", name)
		}
	}
	if err := streams.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestBenchCheckoutFlags checks what --distributed needs and refuses.
func TestBenchCheckoutFlags(t *testing.T) {
	t.Setenv("AGORA_POSTGRES_URL", "")
	t.Setenv("AGORA_NATS_URL", "")
	for _, c := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--distributed"}, "needs PostgreSQL"},
		{[]string{"--distributed", "--postgres", "postgres://x"}, "needs PostgreSQL"},
		{[]string{"--postgres", "postgres://x"}, "only with --distributed"},
		{[]string{"--distributed", "--postgres", "postgres://x", "--nats", "nats://x", "--tracing", "both"}, "not with --distributed"},
		{[]string{"--distributed", "--postgres", "postgres://x", "--nats", "nats://x", "--relay-events", "10"}, "not with --distributed"},
	} {
		m := NewMain()
		m.Stderr = &bytes.Buffer{}
		err := m.ParseFlags(append([]string{"bench", "checkout"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	m := NewMain()
	if err := m.ParseFlags([]string{"bench", "checkout", "--distributed", "--postgres", "postgres://x", "--nats", "nats://x"}); err != nil {
		t.Fatal(err)
	}
	if d := m.checkout.Distributed; d == nil || d.PostgresURL != "postgres://x" || d.NATSURL != "nats://x" || m.checkout.RelayEvents != 0 {
		t.Errorf("parsed %+v, relay events %d", d, m.checkout.RelayEvents)
	}
}
