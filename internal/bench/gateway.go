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
	// Rounds runs the targets in turn this many times (default 10), so
	// that the machine's noise falls on all of them alike.
	Rounds int
	// Dir holds the data (default: a temporary directory).
	Dir string
	// Nginx, if set, is an nginx binary to measure as one more target: a
	// plain proxy to the same upstream (keep-alive, no access log).
	Nginx string
	// Caddy, if set, is a caddy binary to measure the same way: a plain
	// reverse_proxy to the same upstream (keep-alive, no logs, no admin
	// API, HTTP only).
	Caddy string
	// Log, if set, receives progress lines.
	Log func(format string, args ...any)
	// Progress, if set, is told before every target's turn how many of
	// the run's turns are done.
	Progress Progress
}

// The targets of the issue, met by the median of the rounds' ratios:
// the gateway, with its whole chain of policies, against Caddy and nginx
// as plain proxies.
const (
	GatewayVsCaddyTarget = 1.1
	GatewayVsNginxTarget = 0.9
)

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
	// CaddyRPS and CaddyP50Ms are Caddy's, when it was measured.
	CaddyRPS   float64 `json:"caddy_rps,omitempty"`
	CaddyP50Ms float64 `json:"caddy_p50_ms,omitempty"`
	// The CPU time this process spent per request on each target (the
	// client, the proxy and the upstream all run in it; nginx and Caddy
	// are processes of their own, so they have none). A steadier measure
	// than requests/s on a shared machine: the gateway's own cost per
	// request is GatewayCPUUs minus PlainProxyCPUUs.
	GatewayCPUUs    float64 `json:"gateway_cpu_us_per_request"`
	PlainProxyCPUUs float64 `json:"plain_proxy_cpu_us_per_request"`
	DirectCPUUs     float64 `json:"direct_cpu_us_per_request"`
	// GatewayVsPlain is the median, over rounds, of the gateway's
	// requests/s divided by the plain proxy's in the same round (the two
	// run back to back): a burst of noise from the shared machine falls on
	// one round, not on the whole figure.
	GatewayVsPlain float64 `json:"gateway_vs_plain_median"`
	// GatewayVsNginx and GatewayVsCaddy are the same medians against
	// nginx and Caddy, when they were measured (targets: at least
	// GatewayVsNginxTarget and GatewayVsCaddyTarget).
	GatewayVsNginx float64 `json:"gateway_vs_nginx_median,omitempty"`
	GatewayVsCaddy float64 `json:"gateway_vs_caddy_median,omitempty"`
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
	if r.CaddyRPS > 0 {
		fmt.Fprintf(tw, "Caddy as a plain reverse_proxy\t%.0f\t%.3f ms\t\n", r.CaddyRPS, r.CaddyP50Ms)
	}
	if r.NginxRPS > 0 {
		fmt.Fprintf(tw, "nginx as a plain proxy\t%.0f\t%.3f ms\t\n", r.NginxRPS, r.NginxP50Ms)
	}
	fmt.Fprintf(tw, "the upstream direct\t%.0f\t%.3f ms\t%.3f ms\n", r.DirectRPS, r.DirectP50Ms, r.DirectP99Ms)
	fmt.Fprintf(tw, "gateway ÷ plain proxy\t%.2f× (median of the rounds' ratios %.2f×)\t\t\n", r.GatewayRPS/r.PlainProxyRPS, r.GatewayVsPlain)
	if r.CaddyRPS > 0 {
		fmt.Fprintf(tw, "gateway ÷ Caddy\t%.2f× (median of the rounds' ratios %.2f×, target ≥ %.1f×)\t\t\n", r.GatewayRPS/r.CaddyRPS, r.GatewayVsCaddy, GatewayVsCaddyTarget)
	}
	if r.NginxRPS > 0 {
		fmt.Fprintf(tw, "gateway ÷ nginx\t%.2f× (median of the rounds' ratios %.2f×, target ≥ %.1f×)\t\t\n", r.GatewayRPS/r.NginxRPS, r.GatewayVsNginx, GatewayVsNginxTarget)
	}
	fmt.Fprintf(tw, "gateway p50 overhead over direct\t\t%.3f ms\t\n", r.GatewayP50Ms-r.DirectP50Ms)
	fmt.Fprintf(tw, "CPU per request (client + proxy + upstream)\tgateway %.1f µs\tplain proxy %.1f µs\tdirect %.1f µs\n",
		r.GatewayCPUUs, r.PlainProxyCPUUs, r.DirectCPUUs)
	fmt.Fprintf(tw, "errors\t%d\t\t\n", r.Errors)
	return tw.Flush()
}

// gatewayTarget is one of the targets bench gateway drives, with what it
// measured.
type gatewayTarget struct {
	name string
	url  string
	// n, elapsed and cpu add up the throughput turns; rps is each round's.
	n       int
	elapsed time.Duration
	cpu     time.Duration
	rps     []float64
	// lat is the one-client turns' latencies.
	lat []time.Duration
}

func (t *gatewayTarget) throughput() float64 { return float64(t.n) / t.elapsed.Seconds() }

// cpuPerRequest is this process's CPU time per request in µs.
func (t *gatewayTarget) cpuPerRequest() float64 {
	return float64(t.cpu.Microseconds()) / float64(max(t.n, 1))
}

// RunGateway boots the platform (embedded) and drives GET
// /api/v1/products/{id} with a bearer token several ways: through the
// gateway (authentication, rate limits with limits too high to trip,
// idempotency and resilience policies, balancer), through a plain
// httputil.ReverseProxy to the same catalog instance, through nginx and
// Caddy as plain proxies to it (when their binaries are given), and at
// that instance directly. The targets take turns, Rounds times; each
// round's ratios of the gateway to each proxy are taken.
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
	// The gateway first, the proxies it is compared with next, the
	// upstream direct last.
	targets := []*gatewayTarget{
		{name: "gateway", url: "http://" + srv.Addr() + path},
		{name: "plain proxy", url: "http://" + ln.Addr().String() + path},
	}
	for _, x := range []struct {
		proxy externalProxy
		bin   string
	}{{nginx, cfg.Nginx}, {caddy, cfg.Caddy}} {
		if x.bin == "" {
			continue
		}
		addr, stop, err := x.proxy.start(ctx, x.bin, filepath.Join(dir, x.proxy.name), upstream.Host)
		if err != nil {
			return GatewayResult{}, err
		}
		defer stop()
		targets = append(targets, &gatewayTarget{name: x.proxy.name, url: "http://" + addr + path})
	}
	targets = append(targets, &gatewayTarget{name: "direct", url: upstream.String() + path})
	gw, direct := targets[0], targets[len(targets)-1]

	var res GatewayResult
	// Progress counts turns: a round of every target for throughput,
	// then one for latency, Rounds times each.
	turns, turn := 2*cfg.Rounds*len(targets), 0
	logf("throughput: %d rounds of %s, %s each, %d clients", cfg.Rounds, names(targets), cfg.Duration, cfg.Clients)
	for round := range cfg.Rounds {
		for _, i := range order(len(targets), round) {
			t := targets[i]
			cfg.Progress.report(fmt.Sprintf("round %d: %s", round+1, t.name), "turns", turn, turns)
			turn++
			// Each target starts on a collected heap, as a Go benchmark
			// does: a collection the previous target's garbage made due
			// is not charged to this one.
			runtime.GC()
			before := cpuTime()
			tok, err := c.bearer(ctx)
			if err != nil {
				return res, err
			}
			lat, errs, took, err := drive(ctx, t.url, tok, cfg.Clients, cfg.Duration)
			if err != nil {
				return res, err
			}
			t.cpu += cpuTime() - before
			t.n += len(lat)
			t.elapsed += took
			t.rps = append(t.rps, float64(len(lat))/took.Seconds())
			res.Errors += errs
		}
	}
	// Latency: one client at a time, the targets in turn.
	logf("latency: %d rounds of one client, %s each", cfg.Rounds, cfg.Duration/2)
	for round := range cfg.Rounds {
		for _, t := range targets {
			cfg.Progress.report(fmt.Sprintf("latency round %d: %s", round+1, t.name), "turns", turn, turns)
			turn++
			tok, err := c.bearer(ctx)
			if err != nil {
				return res, err
			}
			l, errs, _, err := drive(ctx, t.url, tok, 1, cfg.Duration/2)
			if err != nil {
				return res, err
			}
			t.lat = append(t.lat, l...)
			res.Errors += errs
		}
	}
	cfg.Progress.report("done", "turns", turns, turns)
	for _, t := range targets {
		slices.Sort(t.lat)
	}
	res.GatewayRPS, res.GatewayCPUUs = gw.throughput(), gw.cpuPerRequest()
	res.GatewayP50Ms, res.GatewayP99Ms = pct(gw.lat, 0.50), pct(gw.lat, 0.99)
	res.DirectRPS, res.DirectCPUUs = direct.throughput(), direct.cpuPerRequest()
	res.DirectP50Ms, res.DirectP99Ms = pct(direct.lat, 0.50), pct(direct.lat, 0.99)
	for _, t := range targets[1 : len(targets)-1] {
		rps, p50, vs := t.throughput(), pct(t.lat, 0.50), medianRatio(gw.rps, t.rps)
		switch t.name {
		case "plain proxy":
			res.PlainProxyRPS, res.PlainP50Ms, res.GatewayVsPlain = rps, p50, vs
			res.PlainProxyCPUUs = t.cpuPerRequest()
		case nginx.name:
			res.NginxRPS, res.NginxP50Ms, res.GatewayVsNginx = rps, p50, vs
		case caddy.name:
			res.CaddyRPS, res.CaddyP50Ms, res.GatewayVsCaddy = rps, p50, vs
		}
	}
	return res, nil
}

// names lists the targets' names.
func names(targets []*gatewayTarget) string {
	var s []string
	for _, t := range targets {
		s = append(s, t.name)
	}
	return strings.Join(s, ", ")
}

// medianRatio is the median over rounds of a[i] / b[i] (0 without a
// round where b[i] > 0).
func medianRatio(a, b []float64) float64 {
	var ratios []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			ratios = append(ratios, a[i]/b[i])
		}
	}
	slices.Sort(ratios)
	n := len(ratios)
	if n == 0 {
		return 0
	}
	return (ratios[(n-1)/2] + ratios[n/2]) / 2
}

// externalProxy is a proxy that runs as a process of its own, measured
// beside the gateway as a plain keep-alive reverse proxy to the same
// upstream, logging nothing per request.
type externalProxy struct {
	// name names it in the results, the progress lines and errors; its
	// files go in a directory of that name.
	name string
	// file is its configuration file's name.
	file string
	// config is that file's text: a proxy listening on addr (a loopback
	// address) to upstream (host:port), keeping its files under dir.
	config func(dir, addr, upstream string) string
	// args are the binary's arguments to run in the foreground with
	// the configuration file conf.
	args func(dir, conf string) []string
}

// nginx, with as many workers as cores, keeping up to 128 idle
// connections to the upstream.
var nginx = externalProxy{name: "nginx", file: "nginx.conf",
	config: func(dir, addr, upstream string) string {
		return fmt.Sprintf(`daemon off;
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
	},
	args: func(dir, conf string) []string { return []string{"-c", conf, "-p", dir} },
}

// caddy, as a Caddyfile: HTTP only on addr (no certificates, no
// redirects), no admin endpoint, no access log and only errors in its
// own log, no configuration saved; up to 128 idle connections to the
// upstream, like nginx (Caddy's default is 32).
var caddy = externalProxy{name: "caddy", file: "Caddyfile",
	config: func(_, addr, upstream string) string {
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	log {
		output stderr
		level ERROR
	}
}

http://:%[2]s {
	bind %[1]s
	reverse_proxy %[3]s {
		transport http {
			keepalive_idle_conns_per_host 128
		}
	}
}
`, host, port, upstream)
	},
	args: func(_, conf string) []string { return []string{"run", "--config", conf, "--adapter", "caddyfile"} },
}

// start runs the proxy's binary bin with its configuration in dir, as a
// proxy to upstream, and returns the address it listens on and a stop
// function; the process's output goes to dir/<name>.log, whose end an
// error quotes.
func (p externalProxy) start(ctx context.Context, bin, dir, upstream string) (addr string, stop func(), err error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, p.file)
	if err := os.WriteFile(conf, []byte(p.config(dir, addr, upstream)), 0o644); err != nil {
		return "", nil, err
	}
	logFile := filepath.Join(dir, p.name+".log")
	out, err := os.Create(logFile)
	if err != nil {
		return "", nil, err
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.CommandContext(ctx, bin, p.args(dir, conf)...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, out
	// Whatever it would keep in the home directory stays in dir.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("%s: %w", p.name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	tail := func() string {
		b, _ := os.ReadFile(logFile)
		return lastLines(string(b), 10)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return "", nil, fmt.Errorf("%s exited before listening (%v): %s", p.name, err, tail())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("%s did not listen on %s within 10 s: %s", p.name, addr, tail())
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
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
// proxies it is compared with (all but the last, the upstream direct)
// run in reverse order every other round, so that neither of a pair
// always follows the other (and its after-effects: idle connections
// closed, garbage left to collect) and a drift of the machine's speed
// during a round falls on both alike. The direct target comes last.
func order(n, round int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	if round%2 == 1 && n >= 2 {
		slices.Reverse(o[:n-1])
	}
	return o
}
