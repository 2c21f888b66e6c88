package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestExternalProxyConfigs: the configurations bench gateway writes for
// nginx and Caddy proxy to the upstream on the address given, keep idle
// connections to it, and log nothing per request. With AGORA_TEST_CADDY
// (a caddy binary), Caddy itself adapts its Caddyfile, and the JSON it
// would run has the same: one reverse_proxy to the upstream, no access
// log, no admin endpoint, no automatic HTTPS.
func TestExternalProxyConfigs(t *testing.T) {
	const addr, upstream = "127.0.0.1:18081", "127.0.0.1:18082"
	dir := t.TempDir()

	ng := nginx.config(dir, addr, upstream)
	for _, want := range []string{"access_log off;", "server " + upstream + "; keepalive 128;", "listen " + addr + ";", "proxy_http_version 1.1;", "daemon off;"} {
		if !strings.Contains(ng, want) {
			t.Errorf("nginx.conf has no %q:\n%s", want, ng)
		}
	}

	cf := caddy.config(dir, addr, upstream)
	for _, want := range []string{"admin off", "auto_https off", "persist_config off", "http://:18081 {", "bind 127.0.0.1", "reverse_proxy " + upstream + " {", "keepalive_idle_conns_per_host 128", "level ERROR"} {
		if !strings.Contains(cf, want) {
			t.Errorf("Caddyfile has no %q:\n%s", want, cf)
		}
	}
	// The only log is the global one, of errors: a log directive in the
	// site block would be an access log.
	if n := strings.Count(cf, "log {"); n != 1 || strings.Index(cf, "log {") > strings.Index(cf, "http://") {
		t.Errorf("Caddyfile logs more than errors:\n%s", cf)
	}
	if got := caddy.args(dir, "/x/Caddyfile"); !slices.Equal(got, []string{"run", "--config", "/x/Caddyfile", "--adapter", "caddyfile"}) {
		t.Errorf("caddy args %q", got)
	}

	t.Run("adapted by caddy", func(t *testing.T) {
		bin := os.Getenv("AGORA_TEST_CADDY")
		if bin == "" {
			t.Skip("AGORA_TEST_CADDY (a caddy binary) is not set: the Caddyfile is not adapted by Caddy")
		}
		file := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(file, []byte(cf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "adapt", "--config", file, "--adapter", "caddyfile").Output()
		if err != nil {
			t.Fatalf("caddy adapt: %v: %s", err, out)
		}
		var adapted struct {
			Admin struct{ Disabled bool } `json:"admin"`
			Apps  struct {
				HTTP struct {
					Servers map[string]struct {
						Listen []string `json:"listen"`
						Routes []struct {
							Handle []struct {
								Handler   string `json:"handler"`
								Upstreams []struct {
									Dial string `json:"dial"`
								} `json:"upstreams"`
							} `json:"handle"`
						} `json:"routes"`
						Logs           json.RawMessage `json:"logs"`
						AutomaticHTTPS struct {
							Disable bool `json:"disable"`
						} `json:"automatic_https"`
					} `json:"servers"`
				} `json:"http"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(out, &adapted); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !adapted.Admin.Disabled || len(adapted.Apps.HTTP.Servers) != 1 {
			t.Fatalf("adapted: %s", out)
		}
		for _, s := range adapted.Apps.HTTP.Servers {
			if !slices.Equal(s.Listen, []string{addr}) || !s.AutomaticHTTPS.Disable || s.Logs != nil ||
				len(s.Routes) != 1 || len(s.Routes[0].Handle) != 1 || s.Routes[0].Handle[0].Handler != "reverse_proxy" ||
				len(s.Routes[0].Handle[0].Upstreams) != 1 || s.Routes[0].Handle[0].Upstreams[0].Dial != upstream {
				t.Errorf("adapted server: %+v\n%s", s, out)
			}
		}
	})
}

// TestGatewayWithCaddy runs one short round of bench gateway with Caddy
// (AGORA_TEST_CADDY, a caddy binary) as a target: Caddy starts, proxies
// every request, and has its ratio.
func TestGatewayWithCaddy(t *testing.T) {
	bin := os.Getenv("AGORA_TEST_CADDY")
	if bin == "" {
		t.Skip("AGORA_TEST_CADDY (a caddy binary) is not set")
	}
	if testing.Short() {
		t.Skip("boots the platform")
	}
	var turns []int
	res, err := RunGateway(context.Background(), GatewayConfig{Clients: 4, Duration: 200 * time.Millisecond, Rounds: 1, Dir: t.TempDir(), Caddy: bin,
		Progress: func(_, _ string, done, total int) { turns = append(turns, done, total) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.CaddyRPS <= 0 || res.CaddyP50Ms <= 0 || res.GatewayVsCaddy <= 0 || res.NginxRPS != 0 || res.GatewayVsNginx != 0 {
		t.Errorf("result: %+v", res)
	}
	// Four targets, a throughput and a latency turn each.
	if n := len(turns); n < 2 || turns[n-2] != 8 || turns[n-1] != 8 {
		t.Errorf("progress %v, want it to end at 8 of 8", turns)
	}
}

// TestOrder: every other round, the gateway and the proxies it is
// compared with run in reverse order; the upstream direct is always last.
func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		n, round int
		want     []int
	}{{3, 0, []int{0, 1, 2}}, {3, 1, []int{1, 0, 2}}, {5, 0, []int{0, 1, 2, 3, 4}}, {5, 3, []int{3, 2, 1, 0, 4}}} {
		if got := order(tc.n, tc.round); !slices.Equal(got, tc.want) {
			t.Errorf("order(%d, %d) = %v, want %v", tc.n, tc.round, got, tc.want)
		}
	}
	if got := medianRatio([]float64{10, 20, 30, 40}, []float64{10, 10, 0, 10}); got != 2 {
		t.Errorf("medianRatio = %v, want 2 (the round without a rate left out)", got)
	}
}
