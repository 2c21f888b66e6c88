// Package faults puts Toxiproxy (embedded, no daemon) between a test and
// what it dials — PostgreSQL, NATS, Redis, a service — so that the test
// can blackhole, slow, cut or reset the connection on cue and heal it.
package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is one TCP proxy from a loopback port to an upstream address.
type Proxy struct {
	p *toxiproxy.Proxy
}

// New starts a proxy to upstream ("host:port") on a free loopback port,
// stopped when the test ends.
func New(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("faults: start proxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{p: p}
}

// Addr is the address to dial instead of the upstream.
func (p *Proxy) Addr() string { return p.p.Listen }

// Rewrite returns url with its first occurrence of upstream replaced by
// the proxy's address (a database or broker URL pointed at the proxy).
func (p *Proxy) Rewrite(url, upstream string) string {
	return strings.Replace(url, upstream, p.p.Listen, 1)
}

// add adds a toxic; stream is "downstream" (upstream to client) or
// "upstream" (client to upstream).
func (p *Proxy) add(name, typ, stream string, attrs string) error {
	_, err := p.p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
		`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)))
	if err != nil {
		return fmt.Errorf("faults: %s on %s: %w", typ, p.p.Name, err)
	}
	return nil
}

// Blackhole lets no byte through either way on any connection, open or
// new, without closing them: a partition, or a peer that hangs.
func (p *Proxy) Blackhole() error {
	if err := p.add("blackhole_down", "timeout", "downstream", `{"timeout":0}`); err != nil {
		return err
	}
	return p.add("blackhole_up", "timeout", "upstream", `{"timeout":0}`)
}

// Latency delays every chunk from the upstream by d.
func (p *Proxy) Latency(d time.Duration) error {
	return p.add("latency", "latency", "downstream", fmt.Sprintf(`{"latency":%d}`, d.Milliseconds()))
}

// CutAnswers closes each connection after n bytes have come back from
// the upstream: a reply lost part-way, after the upstream acted.
func (p *Proxy) CutAnswers(n int64) error {
	return p.add("cut", "limit_data", "downstream", fmt.Sprintf(`{"bytes":%d}`, n))
}

// Heal removes every toxic: traffic flows again.
func (p *Proxy) Heal() {
	p.p.Toxics.ResetToxics(context.Background())
}

// Disable closes every connection and refuses new ones until Enable.
func (p *Proxy) Disable() { p.p.Stop() }

// Enable listens again on the same address after Disable.
func (p *Proxy) Enable() error {
	if err := p.p.Start(); err != nil {
		return fmt.Errorf("faults: restart proxy %s: %w", p.p.Name, err)
	}
	return nil
}
