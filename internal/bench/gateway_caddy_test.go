//go:build caddy

package bench

// Tests with a real Caddy, built only with the caddy tag (they need a
// caddy binary, which CI does not install):
//
//	AGORA_TEST_CADDY=$(command -v caddy) go test -tags caddy -run Caddy ./internal/bench/

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// caddyBinary is AGORA_TEST_CADDY, which the caddy tag requires.
func caddyBinary(t *testing.T) string {
	bin := os.Getenv("AGORA_TEST_CADDY")
	if bin == "" {
		t.Fatal("the caddy tag needs AGORA_TEST_CADDY, a caddy binary")
	}
	return bin
}

// TestCaddyAdaptsItsCaddyfile: Caddy itself adapts the Caddyfile bench
// gateway writes, and the JSON it would run has one reverse_proxy to the
// upstream, no access log, no admin endpoint, no automatic HTTPS.
func TestCaddyAdaptsItsCaddyfile(t *testing.T) {
	const addr, upstream = "127.0.0.1:18081", "127.0.0.1:18082"
	dir := t.TempDir()
	cf := caddy.config(dir, addr, upstream)

	bin := caddyBinary(t)
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
}

// TestGatewayWithCaddy runs one short round of bench gateway with Caddy
// (AGORA_TEST_CADDY, a caddy binary) as a target: Caddy starts, proxies
// every request, and has its ratio.
func TestGatewayWithCaddy(t *testing.T) {
	bin := caddyBinary(t)
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
