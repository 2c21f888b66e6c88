package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/server"
)

// GatewayConfig sets what `agora bench gateway` runs.
type GatewayConfig struct {
	// Clients is the number of concurrent clients (default 32).
	Clients int
	// Duration is how long each target is driven per round (default 1s).
	Duration time.Duration
	// Rounds alternates the three targets this many times (default 10), so
	// that the machine's noise falls on all of them alike.
	Rounds int
	// Dir holds the data (default: a temporary directory).
	Dir string
	// Nginx, if set, is an nginx binary to measure as a fourth target: a
	// plain proxy to the same upstream (keep-alive, no access log).
	Nginx string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
}

// GatewayResult is what `agora bench gateway --json` prints.
type GatewayResult struct {
	GatewayRPS    float64 `json:"gateway_rps"`
	PlainProxyRPS float64 `json:"plain_proxy_rps"`
	DirectRPS     float64 `json:"direct_rps"`
	// The latencies are of one client alone (no queueing): what the
	// gateway adds to a request, not how long a saturated machine makes
	// requests wait.
	GatewayP50Ms float64 `json:"gateway_p50_ms"`
	GatewayP99Ms float64 `json:"gateway_p99_ms"`
	PlainP50Ms   float64 `json:"plain_proxy_p50_ms"`
	DirectP50Ms  float64 `json:"direct_p50_ms"`
	DirectP99Ms  float64 `json:"direct_p99_ms"`
	// NginxRPS and NginxP50Ms are nginx's, when it was measured.
	NginxRPS   float64 `json:"nginx_rps,omitempty"`
	NginxP50Ms float64 `json:"nginx_p50_ms,omitempty"`
	// The CPU time this process spent per request on each target (the
	// client, the proxy and the upstream all run in it; nginx is another
	// process, so it has none). A steadier measure than requests/s on a
	// shared machine: the gateway's own cost per request is GatewayCPUUs
	// minus PlainProxyCPUUs.
	GatewayCPUUs    float64 `json:"gateway_cpu_us_per_request"`
	PlainProxyCPUUs float64 `json:"plain_proxy_cpu_us_per_request"`
	DirectCPUUs     float64 `json:"direct_cpu_us_per_request"`
	// GatewayVsPlain is the median, over rounds, of the gateway's
	// requests/s divided by the plain proxy's in the same round (the two
	// run back to back): a burst of noise from the shared machine falls on
	// one round, not on the whole figure.
	GatewayVsPlain float64 `json:"gateway_vs_plain_median"`
	// Errors counts answers other than 200 (there should be none).
	Errors int `json:"errors"`
}

// WriteJSON prints r as one JSON object.
func (r GatewayResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints r for people.
func (r GatewayResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GET /api/v1/products/{id}, authenticated and rate-limited\trequests/s (many clients)\tp50 (one client)\tp99 (one client)\n")
	fmt.Fprintf(tw, "through the gateway\t%.0f\t%.3f ms\t%.3f ms\n", r.GatewayRPS, r.GatewayP50Ms, r.GatewayP99Ms)
	fmt.Fprintf(tw, "plain httputil.ReverseProxy\t%.0f\t%.3f ms\t\n", r.PlainProxyRPS, r.PlainP50Ms)
	if r.NginxRPS > 0 {
		fmt.Fprintf(tw, "nginx as a plain proxy\t%.0f\t%.3f ms\t\n", r.NginxRPS, r.NginxP50Ms)
	}
	fmt.Fprintf(tw, "the upstream direct\t%.0f\t%.3f ms\t%.3f ms\n", r.DirectRPS, r.DirectP50Ms, r.DirectP99Ms)
	fmt.Fprintf(tw, "gateway ÷ plain proxy\t%.2f× (median of the rounds' ratios %.2f×)\t\t\n", r.GatewayRPS/r.PlainProxyRPS, r.GatewayVsPlain)
	if r.NginxRPS > 0 {
		fmt.Fprintf(tw, "gateway ÷ nginx\t%.2f×\t\t\n", r.GatewayRPS/r.NginxRPS)
	}
	fmt.Fprintf(tw, "gateway p50 overhead over direct\t\t%.3f ms\t\n", r.GatewayP50Ms-r.DirectP50Ms)
	fmt.Fprintf(tw, "CPU per request (client + proxy + upstream)\tgateway %.1f µs\tplain proxy %.1f µs\tdirect %.1f µs\n",
		r.GatewayCPUUs, r.PlainProxyCPUUs, r.DirectCPUUs)
	fmt.Fprintf(tw, "errors\t%d\t\t\n", r.Errors)
	return tw.Flush()
}

// RunGateway boots the platform (embedded) and drives GET
// /api/v1/products/{id} with a bearer token three ways: through the
// gateway (authentication, rate limits with limits too high to trip,
// idempotency and resilience policies, balancer), through a plain
// httputil.ReverseProxy to the same catalog instance, and at that
// instance directly. The targets take turns, Rounds times.
func RunGateway(ctx context.Context, cfg GatewayConfig) (GatewayResult, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 32
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 10
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "agora-bench-gateway-")
		if err != nil {
			return GatewayResult{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// The embedded table, with the public class's limits out of reach:
	// every request is counted, none refused.
	yaml := strings.Replace(string(routes.DefaultYAML()), "public:\n    client: {rate: 1200, period: 1m, burst: 200}",
		"public:\n    client: {rate: 1000000000, period: 1m, burst: 1000000000}", 1)
	table := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(table, []byte(yaml), 0o600); err != nil {
		return GatewayResult{}, err
	}
	srv, c, stop, err := boot(ctx, server.Config{DataDir: filepath.Join(dir, "platform"), RateLimits: true, Routes: table}, 2)
	if err != nil {
		return GatewayResult{}, err
	}
	defer stop()
	var p struct{ ID string }
	if err := c.post(ctx, "/api/v1/products", map[string]any{"sku": "BENCH-GW", "name": "Gateway bench",
		"price": map[string]any{"amount": 1999, "currency": "USD"}}, &p); err != nil {
		return GatewayResult{}, err
	}
	upstream := &url.URL{Scheme: "http", Host: srv.ServiceAddr("catalog")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return GatewayResult{}, err
	}
	plain := httputil.NewSingleHostReverseProxy(upstream)
	plain.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	ps := &http.Server{Handler: plain}
	go ps.Serve(ln)
	defer ps.Close()

	path := "/api/v1/products/" + p.ID
	targets := []struct {
		name string
		url  string
		lat  []time.Duration
		n    int
	}{
		{name: "gateway", url: "http://" + srv.Addr() + path},
		{name: "plain proxy", url: "http://" + ln.Addr().String() + path},
		{name: "direct", url: upstream.String() + path},
	}
	if cfg.Nginx != "" {
		addr, stop, err := startNginx(ctx, cfg.Nginx, filepath.Join(dir, "nginx"), upstream.Host)
		if err != nil {
			return GatewayResult{}, err
		}
		defer stop()
		targets = append(targets, struct {
			name string
			url  string
			lat  []time.Duration
			n    int
		}{name: "nginx", url: "http://" + addr + path})
	}
	var res GatewayResult
	elapsed := make([]time.Duration, len(targets))
	cpu := make([]time.Duration, len(targets))
	var ratios []float64
	for round := range cfg.Rounds {
		var roundRPS [2]float64
		for _, i := range order(len(targets), round) {
			logf("round %d: %s", round+1, targets[i].name)
			// Each target starts on a collected heap, as a Go benchmark
			// does: a collection the previous target's garbage made due
			// is not charged to this one.
			runtime.GC()
			before := cpuTime()
			lat, errs, took, err := drive(ctx, targets[i].url, c.token, cfg.Clients, cfg.Duration)
			if err != nil {
				return res, err
			}
			if i < 2 {
				roundRPS[i] = float64(len(lat)) / took.Seconds()
			}
			cpu[i] += cpuTime() - before
			targets[i].lat = append(targets[i].lat, lat...)
			elapsed[i] += took
			res.Errors += errs
		}
		if roundRPS[1] > 0 {
			ratios = append(ratios, roundRPS[0]/roundRPS[1])
		}
	}
	slices.Sort(ratios)
	if n := len(ratios); n > 0 {
		res.GatewayVsPlain = (ratios[(n-1)/2] + ratios[n/2]) / 2
	}
	rps := func(i int) float64 { return float64(len(targets[i].lat)) / elapsed[i].Seconds() }
	res.GatewayRPS, res.PlainProxyRPS, res.DirectRPS = rps(0), rps(1), rps(2)
	perReq := func(i int) float64 { return float64(cpu[i].Microseconds()) / float64(max(len(targets[i].lat), 1)) }
	res.GatewayCPUUs, res.PlainProxyCPUUs, res.DirectCPUUs = perReq(0), perReq(1), perReq(2)
	// Latency: one client at a time, the targets in turn.
	lat := make([][]time.Duration, len(targets))
	for round := range cfg.Rounds {
		for i := range targets {
			logf("latency round %d: %s", round+1, targets[i].name)
			l, errs, _, err := drive(ctx, targets[i].url, c.token, 1, cfg.Duration/2)
			if err != nil {
				return res, err
			}
			lat[i] = append(lat[i], l...)
			res.Errors += errs
		}
	}
	for i := range lat {
		slices.Sort(lat[i])
	}
	res.GatewayP50Ms, res.GatewayP99Ms = pct(lat[0], 0.50), pct(lat[0], 0.99)
	res.PlainP50Ms = pct(lat[1], 0.50)
	res.DirectP50Ms, res.DirectP99Ms = pct(lat[2], 0.50), pct(lat[2], 0.99)
	if len(targets) > 3 {
		res.NginxRPS, res.NginxP50Ms = rps(3), pct(lat[3], 0.50)
	}
	return res, nil
}

// startNginx runs nginx as a plain keep-alive proxy to upstream, with as
// many workers as cores and no access log, and returns its address.
func startNginx(ctx context.Context, bin, dir, upstream string) (string, func(), error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp; uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  upstream catalog { server %[2]s; keepalive 128; }
  server {
    listen %[3]s;
    location / { proxy_pass http://catalog; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`, dir, upstream, addr)
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-c", file, "-p", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("nginx: %w", err)
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("nginx did not listen on %s", addr)
}

// drive sends GET target from clients goroutines for d and returns every
// successful request's latency, the number of failed ones, and the time
// it took.
func drive(ctx context.Context, target, token string, clients int, d time.Duration) ([]time.Duration, int, time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: clients * 2}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var first error
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(stop) && ctx.Err() == nil {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				req.Header.Set("Authorization", "Bearer "+token)
				t0 := time.Now()
				res, err := hc.Do(req)
				if err != nil {
					bad++
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			all = append(all, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, errs, time.Since(start), first
}

// order is the order the targets take in round: the gateway and the
// plain proxy (the first two) swap places every other round, so that
// neither always follows the same target (and its after-effects: idle
// connections closed, garbage left to collect) and a drift of the
// machine's speed during a round pair falls on both alike.
func order(n, round int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	if round%2 == 1 && n >= 2 {
		o[0], o[1] = 1, 0
	}
	return o
}
