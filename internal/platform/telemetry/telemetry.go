// Package telemetry wires Agora's Prometheus metrics: event-store commit
// latency and batch size, events appended, projection and relay lag, RED
// metrics per HTTP route and service, sagas and checkouts, consumers, the
// gateway's breakers, bulkheads and rate limits, and caches (see
// commerce.go); and a sampler of a few of them for the console's charts
// (sampler.go). The packages it observes do not import Prometheus: they
// take an observer or a function, which this package implements.
package telemetry

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the process's metric registry and the collectors Agora feeds.
type Metrics struct {
	// Registry holds every collector; Handler serves it.
	Registry *prometheus.Registry

	appendSeconds *prometheus.HistogramVec
	batchSize     *prometheus.HistogramVec
	// forwarded is registered on first use (PartitionForwarded).
	forwardOnce  sync.Once
	forwarded    *prometheus.CounterVec
	events       *prometheus.CounterVec
	appends      *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
	httpSeconds  *prometheus.HistogramVec
	httpCache    sync.Map // httpKey → *httpSeries
	// route names a request's route and service (Routes); nil: the
	// ServeMux pattern and no service.
	route func(r *http.Request) (route, service string)

	commerce
}

// New returns a registry with Go and process collectors and Agora's metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: reg,
		appendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agora_eventstore_commit_seconds",
			Help:    "Time from the start of an event-store write transaction to its durable commit.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1},
		}, []string{"store"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agora_eventstore_batch_events",
			Help:    "Events per group-committed event-store transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"store"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_eventstore_events_appended_total",
			Help: "Events durably appended to the event store.",
		}, []string{"store"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_eventstore_appends_total",
			Help: "Appends (calls carrying one or more events) committed.",
		}, []string{"store"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_http_requests_total",
			Help: "HTTP requests by service, route pattern, method and status code.",
		}, []string{"service", "route", "method", "code"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agora_http_request_seconds",
			Help:    "HTTP request duration by service and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"service", "route", "method"}),
	}
	reg.MustRegister(m.appendSeconds, m.batchSize, m.events, m.appends, m.httpRequests, m.httpSeconds)
	m.initCommerce()
	return m
}

// Routes sets how HTTP names the route and service of a request no
// handler named them for (see RouteSetter), e.g. with a route-table
// lookup: handlers that copy the request keep the pattern the innermost
// ServeMux matched from reaching the wrapper. An empty route falls back to
// the ServeMux pattern. Call it before serving.
func (m *Metrics) Routes(f func(r *http.Request) (route, service string)) { m.route = f }

// RouteSetter is implemented by the response writer HTTP hands on: a
// handler that knows the request's route and the service it belongs to
// (the gateway, per route) finds it by unwrapping the writer it is given
// (Unwrap() http.ResponseWriter) and names them, at no cost per request.
type RouteSetter interface {
	SetRoute(route, service string)
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// StoreObserver implements eventstore.Observer for the store named name.
type StoreObserver struct {
	seconds prometheus.Observer
	batch   prometheus.Observer
	events  prometheus.Counter
	appends prometheus.Counter
}

// Store returns an eventstore.Observer feeding the store metrics.
func (m *Metrics) Store(name string) *StoreObserver {
	return &StoreObserver{
		seconds: m.appendSeconds.WithLabelValues(name),
		batch:   m.batchSize.WithLabelValues(name),
		events:  m.events.WithLabelValues(name),
		appends: m.appends.WithLabelValues(name),
	}
}

// Committed implements eventstore.Observer.
func (o *StoreObserver) Committed(appends, events int, d time.Duration) {
	o.seconds.Observe(d.Seconds())
	o.batch.Observe(float64(events))
	o.events.Add(float64(events))
	o.appends.Add(float64(appends))
}

// Lagger reports a projection's lag in positions.
type Lagger interface {
	// Name is the projection's name, the metric's label.
	Name() string
	// Lag is how many positions the projection is behind the store's head.
	Lag(ctx context.Context) (uint64, error)
}

// Projection registers a gauge of p's lag (head position minus checkpoint),
// read at scrape time (and by the sampler).
func (m *Metrics) Projection(p Lagger) {
	m.addLag(p)
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "agora_projection_lag_events",
		Help:        "Event-store head position minus the projection's checkpoint.",
		ConstLabels: prometheus.Labels{"projection": p.Name()},
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lag, err := p.Lag(ctx)
		if err != nil {
			return -1
		}
		return float64(lag)
	}))
}

// Breakers registers a gauge of each gateway cluster's circuit breaker,
// read at scrape time from states (cluster → "closed", "half-open" or
// "open"): 0 closed, 1 half-open, 2 open.
func (m *Metrics) Breakers(states func() map[string]string) {
	m.Registry.MustRegister(breakerCollector{states: states, desc: prometheus.NewDesc("agora_gateway_breaker_state",
		"Circuit breaker of a gateway upstream cluster: 0 closed, 1 half-open, 2 open.", []string{"cluster"}, nil)})
}

type breakerCollector struct {
	states func() map[string]string
	desc   *prometheus.Desc
}

func (c breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for cluster, st := range c.states() {
		v := 0.0
		switch st {
		case "half-open":
			v = 1
		case "open":
			v = 2
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, cluster)
	}
}

// HTTP wraps h with per-route request counts and durations. The route is
// the ServeMux pattern that matched (never the raw path, to bound label
// cardinality).
func (m *Metrics) HTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		route, service := sw.route, sw.service
		if route == "" {
			route = r.Pattern
			if m.route != nil {
				if rt, svc := m.route(r); rt != "" {
					route, service = rt, svc
				}
			}
		}
		if route == "" {
			route = "unmatched"
		}
		m.series(service, route, r.Method, sw.code).observe(time.Since(start))
	})
}

// httpKey names one route's series of one method and status.
type httpKey struct {
	service, route, method string
	code                   int
}

// httpSeries is the counter and histogram of an httpKey, resolved once
// (a label lookup hashes every label on every request).
type httpSeries struct {
	requests prometheus.Counter
	seconds  prometheus.Observer
}

func (s *httpSeries) observe(d time.Duration) {
	s.requests.Inc()
	s.seconds.Observe(d.Seconds())
}

func (m *Metrics) series(service, route, method string, code int) *httpSeries {
	k := httpKey{service, route, method, code}
	if s, ok := m.httpCache.Load(k); ok {
		return s.(*httpSeries)
	}
	s := &httpSeries{requests: m.httpRequests.WithLabelValues(service, route, method, strconv.Itoa(code)),
		seconds: m.httpSeconds.WithLabelValues(service, route, method)}
	actual, _ := m.httpCache.LoadOrStore(k, s)
	return actual.(*httpSeries)
}

type codeWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
	// route and service, if set, name the request's route (SetRoute).
	route, service string
}

// SetRoute implements RouteSetter.
func (w *codeWriter) SetRoute(route, service string) { w.route, w.service = route, service }

func (w *codeWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// PartitionForwarded counts a request or call about one partition that
// this instance passed to the instance holding the partition's lease:
// kind "http" or "call". Safe on nil.
func (m *Metrics) PartitionForwarded(kind string) {
	if m == nil {
		return
	}
	m.forwardOnce.Do(func() {
		m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_partition_forwarded_total",
			Help: "Requests (http) and bus calls (call) about one partition passed to the instance holding its lease.",
		}, []string{"kind"})
		m.Registry.MustRegister(m.forwarded)
	})
	m.forwarded.WithLabelValues(kind).Inc()
}
