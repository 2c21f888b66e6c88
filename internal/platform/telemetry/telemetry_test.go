package telemetry_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/telemetry"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// exposition is a scrape of a Metrics' Handler.
type exposition struct {
	samples []sample
	types   map[string]string // metric family → TYPE
	text    string
}

func scrape(t *testing.T, m *telemetry.Metrics) exposition {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler: status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("metrics handler: Content-Type %q, want the text format", ct)
	}
	x := exposition{types: map[string]string{}, text: rec.Body.String()}
	sc := bufio.NewScanner(strings.NewReader(x.text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			x.types[name] = typ
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		x.samples = append(x.samples, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return x
}

// parseSample parses `name{k="v",...} value` (labels optional; values may
// hold spaces, braces and escaped quotes).
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:i], line[i:]
	if strings.HasPrefix(line, "{") {
		line = line[1:]
		for !strings.HasPrefix(line, "}") {
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, errors.New("bad label")
			}
			key := line[:eq]
			line = line[eq+2:]
			var val strings.Builder
			for {
				if line == "" {
					return s, errors.New("unterminated label value")
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\\' && line != "" {
					switch line[0] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(line[0])
					}
					line = line[1:]
					continue
				}
				val.WriteByte(c)
			}
			s.labels[key] = val.String()
			line = strings.TrimPrefix(line, ",")
		}
		line = line[1:]
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// find returns the samples named name whose labels are exactly labels.
func (x exposition) find(name string, labels map[string]string) []sample {
	var out []sample
	for _, s := range x.samples {
		if s.name == name && maps.Equal(s.labels, labels) {
			out = append(out, s)
		}
	}
	return out
}

// value returns the one sample named name with exactly labels.
func (x exposition) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	found := x.find(name, labels)
	if len(found) != 1 {
		t.Fatalf("%d samples %s%v, want 1; exposition:\n%s", len(found), name, labels, x.relevant(name))
	}
	return found[0].value
}

// absent fails t if any sample is named name.
func (x exposition) absent(t *testing.T, name string) {
	t.Helper()
	for _, s := range x.samples {
		if s.name == name {
			t.Errorf("unexpected sample %s%v = %v", s.name, s.labels, s.value)
		}
	}
}

// series returns every sample named name.
func (x exposition) series(name string) []sample {
	var out []sample
	for _, s := range x.samples {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

func (x exposition) relevant(name string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(x.text, "\n") {
		if strings.Contains(line, name) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func with(base map[string]string, kv ...string) map[string]string {
	m := maps.Clone(base)
	maps.Copy(m, l(kv...))
	return m
}

func TestNewExposesRuntimeCollectors(t *testing.T) {
	x := scrape(t, telemetry.New())
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if len(x.series(name)) == 0 {
			t.Errorf("no %s in a new registry's exposition", name)
		}
	}
	// Labelled vectors show nothing until a series is used.
	for _, name := range []string{"agora_eventstore_events_appended_total", "agora_http_requests_total", "agora_projection_lag_events", "agora_gateway_breaker_state"} {
		x.absent(t, name)
	}
}

func TestStoreObserver(t *testing.T) {
	m := telemetry.New()
	var _ eventstore.Observer = m.Store("sqlite")
	o := m.Store("sqlite")
	o.Committed(2, 5, 3*time.Millisecond)
	o.Committed(1, 1, 300*time.Millisecond)
	// A second observer for the same store feeds the same series; another
	// store has its own.
	m.Store("sqlite").Committed(3, 40, 100*time.Microsecond)
	m.Store("postgres").Committed(1, 7, 20*time.Millisecond)

	x := scrape(t, m)
	for name, typ := range map[string]string{
		"agora_eventstore_commit_seconds":        "histogram",
		"agora_eventstore_batch_events":          "histogram",
		"agora_eventstore_events_appended_total": "counter",
		"agora_eventstore_appends_total":         "counter",
	} {
		if x.types[name] != typ {
			t.Errorf("TYPE of %s = %q, want %q", name, x.types[name], typ)
		}
	}
	sq, pg := l("store", "sqlite"), l("store", "postgres")
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agora_eventstore_events_appended_total", sq, 46},
		{"agora_eventstore_appends_total", sq, 6},
		{"agora_eventstore_events_appended_total", pg, 7},
		{"agora_eventstore_appends_total", pg, 1},
		{"agora_eventstore_batch_events_count", sq, 3},
		{"agora_eventstore_batch_events_sum", sq, 46},
		{"agora_eventstore_batch_events_count", pg, 1},
		{"agora_eventstore_commit_seconds_count", sq, 3},
		// Batch buckets are powers of two and cumulative; the sqlite
		// batches are 5 (le 8), 1 (le 1) and 40 (le 64).
		{"agora_eventstore_batch_events_bucket", with(sq, "le", "1"), 1},
		{"agora_eventstore_batch_events_bucket", with(sq, "le", "4"), 1},
		{"agora_eventstore_batch_events_bucket", with(sq, "le", "8"), 2},
		{"agora_eventstore_batch_events_bucket", with(sq, "le", "32"), 2},
		{"agora_eventstore_batch_events_bucket", with(sq, "le", "64"), 3},
		{"agora_eventstore_batch_events_bucket", with(sq, "le", "+Inf"), 3},
		// Commit buckets: 0.1ms → le 0.0002; 3ms → le 0.005; 300ms → le 0.5.
		{"agora_eventstore_commit_seconds_bucket", with(sq, "le", "0.0002"), 1},
		{"agora_eventstore_commit_seconds_bucket", with(sq, "le", "0.002"), 1},
		{"agora_eventstore_commit_seconds_bucket", with(sq, "le", "0.005"), 2},
		{"agora_eventstore_commit_seconds_bucket", with(sq, "le", "0.25"), 2},
		{"agora_eventstore_commit_seconds_bucket", with(sq, "le", "0.5"), 3},
		{"agora_eventstore_commit_seconds_bucket", with(sq, "le", "1"), 3},
		{"agora_eventstore_commit_seconds_bucket", with(pg, "le", "0.01"), 0},
		{"agora_eventstore_commit_seconds_bucket", with(pg, "le", "0.02"), 1},
	} {
		if got := x.value(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got, want := x.value(t, "agora_eventstore_commit_seconds_sum", sq), 0.3031; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("commit seconds sum = %v, want %v", got, want)
	}
}

type lagger struct {
	name string
	mu   sync.Mutex
	lag  uint64
	err  error
	ctx  bool // whether Lag got a context with a deadline
}

func (g *lagger) Name() string { return g.name }

func (g *lagger) Lag(ctx context.Context) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, g.ctx = ctx.Deadline()
	return g.lag, g.err
}

func (g *lagger) set(lag uint64, err error) {
	g.mu.Lock()
	g.lag, g.err = lag, err
	g.mu.Unlock()
}

func TestProjectionLagIsReadAtScrapeTime(t *testing.T) {
	m := telemetry.New()
	orders := &lagger{name: "orders", lag: 42}
	stock := &lagger{name: "stock"}
	m.Projection(orders)
	m.Projection(stock)

	x := scrape(t, m)
	if x.types["agora_projection_lag_events"] != "gauge" {
		t.Errorf("TYPE of agora_projection_lag_events = %q, want gauge", x.types["agora_projection_lag_events"])
	}
	if got := x.value(t, "agora_projection_lag_events", l("projection", "orders")); got != 42 {
		t.Errorf("orders lag = %v, want 42", got)
	}
	if got := x.value(t, "agora_projection_lag_events", l("projection", "stock")); got != 0 {
		t.Errorf("stock lag = %v, want 0", got)
	}
	if !orders.ctx {
		t.Error("Lag was called without a deadline")
	}

	orders.set(7, nil)
	stock.set(99, errors.New("store down"))
	x = scrape(t, m)
	if got := x.value(t, "agora_projection_lag_events", l("projection", "orders")); got != 7 {
		t.Errorf("orders lag after change = %v, want 7", got)
	}
	if got := x.value(t, "agora_projection_lag_events", l("projection", "stock")); got != -1 {
		t.Errorf("lag of a failing projection = %v, want -1", got)
	}
}

func TestBreakersReadAtScrapeTime(t *testing.T) {
	m := telemetry.New()
	var mu sync.Mutex
	states := map[string]string{"orders": "closed", "payments": "half-open", "catalog": "open"}
	m.Breakers(func() map[string]string {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(states)
	})
	x := scrape(t, m)
	if x.types["agora_gateway_breaker_state"] != "gauge" {
		t.Errorf("TYPE of agora_gateway_breaker_state = %q, want gauge", x.types["agora_gateway_breaker_state"])
	}
	for cluster, want := range map[string]float64{"orders": 0, "payments": 1, "catalog": 2} {
		if got := x.value(t, "agora_gateway_breaker_state", l("cluster", cluster)); got != want {
			t.Errorf("breaker %s = %v, want %v", cluster, got, want)
		}
	}

	mu.Lock()
	states = map[string]string{"orders": "open"}
	mu.Unlock()
	x = scrape(t, m)
	if got := x.value(t, "agora_gateway_breaker_state", l("cluster", "orders")); got != 2 {
		t.Errorf("breaker orders after opening = %v, want 2", got)
	}
	if n := len(x.series("agora_gateway_breaker_state")); n != 1 {
		t.Errorf("%d breaker series after clusters went away, want 1:\n%s", n, x.relevant("breaker"))
	}
}

func TestHTTPCountsRequestsPerRoutePattern(t *testing.T) {
	m := telemetry.New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.Error(w, "no such order", http.StatusNotFound)
			return
		}
		io.WriteString(w, "order")
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		// The status is the first one written; a later WriteHeader is
		// superfluous and must not change it.
		io.WriteString(w, "body first")
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("/twice", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		w.WriteHeader(http.StatusTeapot)
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {})
	h := m.HTTP(mux)

	for _, rq := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/orders/1", 200},
		{"GET", "/orders/2", 200},
		{"GET", "/orders/3", 200},
		{"GET", "/orders/missing", 404},
		{"POST", "/orders", 201},
		{"POST", "/orders", 201},
		{"GET", "/late", 200},
		{"GET", "/twice", 202},
		{"GET", "/silent", 200},
		{"GET", "/nowhere/1", 404},
		{"GET", "/nowhere/2", 404},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(rq.method, rq.path, nil))
		if rec.Code != rq.code {
			t.Fatalf("%s %s: status %d, want %d (the wrapper changed the response)", rq.method, rq.path, rec.Code, rq.code)
		}
	}

	x := scrape(t, m)
	if x.types["agora_http_requests_total"] != "counter" || x.types["agora_http_request_seconds"] != "histogram" {
		t.Errorf("TYPEs = %q, %q; want counter, histogram", x.types["agora_http_requests_total"], x.types["agora_http_request_seconds"])
	}
	wantRequests := []struct {
		route, method, code string
		n                   float64
	}{
		{"GET /orders/{id}", "GET", "200", 3},
		{"GET /orders/{id}", "GET", "404", 1},
		{"POST /orders", "POST", "201", 2},
		{"/late", "GET", "200", 1},
		{"/twice", "GET", "202", 1},
		{"/silent", "GET", "200", 1},
		{"unmatched", "GET", "404", 2},
	}
	for _, w := range wantRequests {
		labels := l("service", "", "route", w.route, "method", w.method, "code", w.code)
		if got := x.value(t, "agora_http_requests_total", labels); got != w.n {
			t.Errorf("requests%v = %v, want %v", labels, got, w.n)
		}
	}
	if n := len(x.series("agora_http_requests_total")); n != len(wantRequests) {
		t.Errorf("%d request series, want %d (raw paths must never be labels):\n%s", n, len(wantRequests), x.relevant("agora_http_requests_total"))
	}
	for _, w := range []struct {
		route, method string
		n             float64
	}{
		{"GET /orders/{id}", "GET", 4},
		{"POST /orders", "POST", 2},
		{"unmatched", "GET", 2},
	} {
		labels := l("service", "", "route", w.route, "method", w.method)
		if got := x.value(t, "agora_http_request_seconds_count", labels); got != w.n {
			t.Errorf("request seconds count%v = %v, want %v", labels, got, w.n)
		}
		if got := x.value(t, "agora_http_request_seconds_bucket", with(labels, "le", "+Inf")); got != w.n {
			t.Errorf("request seconds +Inf bucket%v = %v, want %v", labels, got, w.n)
		}
	}
	if strings.Contains(x.text, "/orders/1") || strings.Contains(x.text, "/nowhere") {
		t.Error("a raw request path leaked into the metrics")
	}
}

func TestHTTPConcurrentRequestsAreAllCounted(t *testing.T) {
	m := telemetry.New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {})
	h := m.HTTP(mux)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ping", nil))
			}
		})
	}
	wg.Wait()
	x := scrape(t, m)
	if got := x.value(t, "agora_http_requests_total", l("service", "", "route", "GET /ping", "method", "GET", "code", "200")); got != workers*each {
		t.Errorf("requests = %v, want %d", got, workers*each)
	}
}

func TestHTTPWrapperKeepsResponseController(t *testing.T) {
	m := telemetry.New()
	var flushErr error
	h := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		flushErr = http.NewResponseController(w).Flush()
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/stream", nil))
	if flushErr != nil {
		t.Fatalf("Flush through the metrics wrapper: %v", flushErr)
	}
	if !rec.Flushed {
		t.Error("the underlying writer was not flushed")
	}
	if rec.Body.String() != "partial" {
		t.Errorf("body = %q, want %q", rec.Body, "partial")
	}
}
