package bench

import (
	"slices"
	"strings"
	"testing"
)

// TestExternalProxyConfigs: the configurations bench gateway writes for
// nginx and Caddy proxy to the upstream on the address given, keep idle
// connections to it, and log nothing per request. (With a caddy binary,
// gateway_caddy_test.go has Caddy itself check the Caddyfile.)
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
