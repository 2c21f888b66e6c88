package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/server"
)

// observability is where the alert rules, their tests and the dashboard
// live.
var observability = filepath.Join("..", "..", "deploy", "observability")

// promtool returns promtool's path, skipping the test when it is not
// installed — unless CI=true, where it must be (.ci/run installs it).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool is not on PATH, and CI=true: install Debian's prometheus package (.ci/run does)")
	}
	t.Skip("promtool is not on PATH (apt-get install prometheus); skipping the alert rules' checks")
	return ""
}

// ruleFiles are the rule files and the rule unit tests of deploy/observability.
func ruleFiles(t *testing.T) (rules, tests []string) {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(observability, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if strings.HasSuffix(f, "_test.yml") {
			tests = append(tests, f)
		} else {
			rules = append(rules, f)
		}
	}
	if len(rules) == 0 || len(tests) == 0 {
		t.Fatalf("rules %v, tests %v in %s: want both", rules, tests, observability)
	}
	return rules, tests
}

// TestAlertRules checks the rule files with promtool and runs their unit
// tests (deploy/observability/*_test.yml), which make every alert fire
// and stay silent.
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	rules, tests := ruleFiles(t)
	for _, args := range [][]string{append([]string{"check", "rules"}, rules...), append([]string{"test", "rules"}, tests...)} {
		// The tests name their rule files relative to themselves.
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args[:2], " "), out)
	}
}

// metricName matches an Agora metric's name in PromQL or in JSON.
var metricName = regexp.MustCompile(`\bagora_[a-zA-Z0-9_]+`)

// referencedMetrics returns every Agora metric name the rule files'
// expressions and the dashboard's queries use, with a histogram's
// _bucket, _sum and _count series named by their histogram. Recording
// rules' outputs (level:metric:operation) do not start with agora_.
func referencedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	rules, _ := ruleFiles(t)
	refs := map[string][]string{} // metric → where
	add := func(where, text string) {
		for _, m := range metricName.FindAllString(text, -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suffix); ok && !strings.HasSuffix(base, "_total") {
					m = base
				}
			}
			if !slices.Contains(refs[m], where) {
				refs[m] = append(refs[m], where)
			}
		}
	}
	for _, f := range rules {
		// Only the expressions: names in descriptions are prose.
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		inExpr := false
		for sc.Scan() {
			line := sc.Text()
			trimmed := strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(trimmed, "expr:"); ok {
				add(filepath.Base(f), rest)
				inExpr = strings.TrimSpace(rest) == "|" || strings.TrimSpace(rest) == ">" || strings.HasPrefix(strings.TrimSpace(rest), "|")
				continue
			}
			if inExpr {
				if strings.HasPrefix(trimmed, "- ") || strings.HasPrefix(trimmed, "labels:") || strings.HasPrefix(trimmed, "annotations:") ||
					strings.HasPrefix(trimmed, "for:") || strings.HasPrefix(trimmed, "record:") || strings.HasPrefix(trimmed, "alert:") {
					inExpr = false
				} else {
					add(filepath.Base(f), line)
				}
			}
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile(filepath.Join(observability, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			add("dashboard panel "+p.Title, tg.Expr)
		}
	}
	return refs
}

// exported returns the metric families of a /metrics scrape.
func exported(raw []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			out[name] = true
		}
	}
	return out
}

// TestEveryMetricTheRulesAndDashboardUseIsExported boots the platform,
// places orders until they end, scrapes /metrics and checks that every
// metric the alert and recording rules and the dashboard query is there
// — and that the console's series answers.
func TestEveryMetricTheRulesAndDashboardUseIsExported(t *testing.T) {
	refs := referencedMetrics(t)
	// The parse finds what the rules and the dashboard are known to use.
	for _, m := range []string{"agora_checkouts_ended_total", "agora_checkout_duration_seconds", "agora_http_requests_total",
		"agora_projection_lag_events", "agora_relay_lag_events", "agora_consumer_pending_messages", "agora_saga_oldest_unfinished_age_seconds",
		"agora_saga_deadline_seconds", "agora_saga_instances", "agora_gateway_breaker_state", "agora_gateway_bulkhead_in_use",
		"agora_cache_hits_total", "agora_gateway_ratelimit_refusals_total", "agora_checkouts_in_flight", "agora_saga_step_duration_seconds"} {
		if len(refs[m]) == 0 {
			t.Errorf("%s is not among the metrics the rules and the dashboard use: %v", m, slices.Sorted(maps.Keys(refs)))
		}
	}
	t.Logf("the rules and the dashboard use %d Agora metrics", len(refs))
	// As agora serve runs: with rate limits (their refusals are a metric).
	c, srv := bootEdge(t, func(cfg *server.Config) {
		cfg.CheckoutMode, cfg.CheckoutTimeout, cfg.RateLimits = server.Orchestration, 10*time.Second, true
	})
	w := &world{client: c, t: t, srv: srv, mode: server.Orchestration, dir: srv.DataDir()}
	p := w.product(1000, 3)
	a := w.account(100_000)
	var ids []string
	for range 4 { // the fourth finds no stock: a cancelled checkout too
		ids = append(ids, w.order(a, p, 1, "62701"))
	}
	for _, id := range ids {
		w.settle(id)
	}
	var missing []string
	w.eventually("every referenced metric exported", func() string {
		r := w.do("GET", "/metrics", nil)
		have := exported(r.raw)
		missing = missing[:0]
		for m, where := range refs {
			if !have[m] {
				missing = append(missing, m+" (used by "+strings.Join(where, ", ")+")")
			}
		}
		slices.Sort(missing)
		return strings.Join(missing, "\n")
	})

	r := w.do("GET", "/metrics", nil)
	for _, want := range []string{
		`agora_checkouts_ended_total{reason="",status="confirmed"} 3`,
		`agora_checkouts_ended_total{reason="out_of_stock",status="cancelled"} 1`,
		`agora_http_requests_total{code="202",method="POST",route="POST /api/v1/orders",service="ordering"} 4`,
		`agora_saga_ended_total{status="completed",type="checkout"} 3`,
	} {
		if !bytes.Contains(r.raw, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The console's series: a point every 5 s once the sampler has read
	// twice.
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := w.do("GET", "/api/v1/ops/metrics/series", nil)
		if r.status != 200 || r.body["step_seconds"] != 5.0 {
			t.Fatalf("series: %d %s", r.status, r.raw)
		}
		if pts, _ := r.body["points"].([]any); len(pts) > 0 {
			pt := pts[len(pts)-1].(map[string]any)
			for _, k := range []string{"at", "orders_per_sec", "p99_ms", "requests_per_sec", "errors_per_sec", "lag"} {
				if _, ok := pt[k]; !ok {
					t.Errorf("point %v lacks %s", pt, k)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no point after 15s: %s", r.raw)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := w.as("").do("GET", "/api/v1/ops/metrics/series", nil); r.status != 401 {
		t.Errorf("series without a token: %d, want 401", r.status)
	}
}
