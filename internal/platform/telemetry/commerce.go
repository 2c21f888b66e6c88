package telemetry

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/saga"
)

// The metrics of sagas, checkouts, consumers, relays, the gateway's
// bulkheads and rate limits, and caches. Every name starts with agora_ and
// carries its unit; label values are bound once per series and kept, so
// that what runs per request or per message allocates nothing.

// durationBuckets are the buckets of checkout and saga durations (seconds):
// fine below a second, where a healthy checkout ends (the checkout SLO's
// threshold, 0.5 s, is one), coarse up to the deadlines.
var durationBuckets = []float64{.005, .01, .025, .05, .075, .1, .15, .2, .3, .5, .75, 1, 2.5, 5, 10, 30, 60, 120, 300}

// stepBuckets are the buckets of one attempt at a saga step (seconds).
var stepBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Checkout statuses and the reasons a checkout ends with (the order's),
// the label values of agora_checkouts_ended_total. A reason not listed is
// counted as "other".
var (
	checkoutStatuses = []string{"confirmed", "cancelled"}
	checkoutReasons  = []string{"out_of_stock", "insufficient_funds", "payment_failed", "shipping_failed", "cancelled_by_customer", "timeout", "other"}
)

// commerce holds the collectors commerce.go adds to Metrics.
type commerce struct {
	sagaStarted     *prometheus.CounterVec
	sagaEnded       *prometheus.CounterVec
	sagaSeconds     *prometheus.HistogramVec
	sagaStepSeconds *prometheus.HistogramVec

	checkouts       *prometheus.CounterVec
	checkoutSeconds *prometheus.HistogramVec
	// checkoutEnded are the bound series of checkouts, by status then
	// reason ("" for a confirmed one); checkoutTook, of durations by status.
	checkoutEnded map[string]map[string]prometheus.Counter
	checkoutTook  map[string]prometheus.Observer
	inFlightOnce  sync.Once

	consumerPending      *prometheus.GaugeVec
	consumerRedeliveries *prometheus.CounterVec
	rateLimited          *prometheus.CounterVec

	// sampled is a registry of what the sampler reads: checkouts, their
	// durations and the HTTP requests (collectors may sit in several
	// registries).
	sampled *prometheus.Registry

	lagMu   sync.Mutex
	lags    []Lagger          // projections and relays
	pending map[string]uint64 // consumer → pending messages

	samplerOnce sync.Once
	sampler     *Sampler
}

func (m *Metrics) initCommerce() {
	c := &m.commerce
	c.sagaStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agora_saga_started_total",
		Help: "Saga instances started, by type.",
	}, []string{"type"})
	c.sagaEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agora_saga_ended_total",
		Help: "Saga instances that ended, by type and status: completed, compensated or failed (needs an operator; a retried instance ends again).",
	}, []string{"type", "status"})
	c.sagaSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "agora_saga_duration_seconds",
		Help:    "Time from a saga instance's start to its end, by type and status.",
		Buckets: durationBuckets,
	}, []string{"type", "status"})
	c.sagaStepSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "agora_saga_step_duration_seconds",
		Help:    "One attempt at a saga step (phase action) or at its compensation (phase compensation), by type, step, phase and outcome: completed, rejected (a business failure), error (retried) or timeout.",
		Buckets: stepBuckets,
	}, []string{"type", "step", "phase", "outcome"})
	c.checkouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agora_checkouts_ended_total",
		Help: "Checkouts that reached a terminal status (the order confirmed or cancelled), by status and the order's cancellation reason.",
	}, []string{"status", "reason"})
	c.checkoutSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "agora_checkout_duration_seconds",
		Help:    "Time from an order's placement (its submission) to its terminal status, by status.",
		Buckets: durationBuckets,
	}, []string{"status"})
	c.consumerPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "agora_consumer_pending_messages",
		Help: "Messages of its stream a durable consumer has not acknowledged yet (not delivered, or delivered and in flight), polled from the broker.",
	}, []string{"consumer"})
	c.consumerRedeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agora_consumer_redeliveries_total",
		Help: "Deliveries to a consumer of a message it had been given before (attempt > 1).",
	}, []string{"consumer"})
	c.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agora_gateway_ratelimit_refusals_total",
		Help: "Requests the gateway refused with 429, by rate-limit class and the limit that refused them (client or tenant).",
	}, []string{"class", "limit"})
	m.Registry.MustRegister(c.sagaStarted, c.sagaEnded, c.sagaSeconds, c.sagaStepSeconds, c.checkouts, c.checkoutSeconds,
		c.consumerPending, c.consumerRedeliveries, c.rateLimited)

	// Every checkout series exists from the start, at zero: a ratio of
	// them is defined before the first cancellation.
	c.checkoutEnded = map[string]map[string]prometheus.Counter{}
	c.checkoutTook = map[string]prometheus.Observer{}
	for _, status := range checkoutStatuses {
		c.checkoutTook[status] = c.checkoutSeconds.WithLabelValues(status)
		c.checkoutEnded[status] = map[string]prometheus.Counter{}
	}
	c.checkoutEnded["confirmed"][""] = c.checkouts.WithLabelValues("confirmed", "")
	for _, reason := range checkoutReasons {
		c.checkoutEnded["cancelled"][reason] = c.checkouts.WithLabelValues("cancelled", reason)
	}

	c.sampled = prometheus.NewRegistry()
	c.sampled.MustRegister(c.checkouts, c.checkoutSeconds, m.httpRequests)
	c.pending = map[string]uint64{}
}

// CheckoutEnded counts a checkout that reached a terminal status — the
// order confirmed, or cancelled for reason — took after the order was
// placed. It is safe on a nil Metrics (a module built without metrics).
func (m *Metrics) CheckoutEnded(confirmed bool, reason string, took time.Duration) {
	if m == nil {
		return
	}
	status := "cancelled"
	if confirmed {
		status, reason = "confirmed", ""
	}
	byReason := m.checkoutEnded[status]
	c, ok := byReason[reason]
	if !ok {
		c = byReason["other"]
	}
	c.Inc()
	m.checkoutTook[status].Observe(took.Seconds())
}

// CheckoutsInFlight registers a gauge of the checkouts under way — orders
// placed whose checkout has not reached a terminal status — read from
// count at scrape time; only the first call of a process counts. Safe on a
// nil Metrics.
func (m *Metrics) CheckoutsInFlight(count func(ctx context.Context) (int, error)) {
	if m == nil {
		return
	}
	m.inFlightOnce.Do(func() {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "agora_checkouts_in_flight",
			Help: "Checkouts under way: orders placed and not yet confirmed or cancelled (in orchestration mode, the checkout sagas started and not yet terminal).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, err := count(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	})
}

// Sagas returns the saga engine's observer (saga.Options.Observer),
// feeding the saga metrics.
func (m *Metrics) Sagas() saga.Observer {
	return &sagaObserver{m: m, series: map[sagaKey]*sagaSeries{}}
}

// sagaKey names the series of one saga type, step, phase and outcome or
// status ("" where it does not apply).
type sagaKey struct {
	typ, step, phase, outcome string
}

// sagaSeries is the bound series of a sagaKey.
type sagaSeries struct {
	counter prometheus.Counter
	seconds prometheus.Observer
}

type sagaObserver struct {
	m      *Metrics
	mu     sync.Mutex
	series map[sagaKey]*sagaSeries
}

// get returns k's series, binding them on first use with bind.
func (o *sagaObserver) get(k sagaKey, bind func() *sagaSeries) *sagaSeries {
	o.mu.Lock()
	defer o.mu.Unlock()
	s, ok := o.series[k]
	if !ok {
		s = bind()
		o.series[k] = s
	}
	return s
}

func (o *sagaObserver) Started(typ string) {
	o.get(sagaKey{typ: typ, phase: "start"}, func() *sagaSeries {
		return &sagaSeries{counter: o.m.sagaStarted.WithLabelValues(typ)}
	}).counter.Inc()
}

func (o *sagaObserver) Step(typ, step string, compensation bool, outcome saga.Outcome, took time.Duration) {
	phase := "action"
	if compensation {
		phase = "compensation"
	}
	o.get(sagaKey{typ, step, phase, string(outcome)}, func() *sagaSeries {
		return &sagaSeries{seconds: o.m.sagaStepSeconds.WithLabelValues(typ, step, phase, string(outcome))}
	}).seconds.Observe(took.Seconds())
}

func (o *sagaObserver) Ended(typ string, status saga.Status, took time.Duration) {
	s := o.get(sagaKey{typ: typ, phase: "end", outcome: string(status)}, func() *sagaSeries {
		st := strings.ToLower(string(status))
		return &sagaSeries{counter: o.m.sagaEnded.WithLabelValues(typ, st), seconds: o.m.sagaSeconds.WithLabelValues(typ, st)}
	})
	s.counter.Inc()
	s.seconds.Observe(took.Seconds())
}

// SagaBacklog registers gauges of the unfinished saga instances, read at
// scrape time from backlog (saga.Engine.Backlog): how many there are per
// type and status, how long the oldest has waited in its status, and
// each type's deadline.
func (m *Metrics) SagaBacklog(backlog func(ctx context.Context) ([]saga.Backlog, error)) {
	m.Registry.MustRegister(&backlogCollector{backlog: backlog,
		count: prometheus.NewDesc("agora_saga_instances",
			"Unfinished saga instances, by type and status: started, compensating or failed (waiting for an operator).", []string{"type", "status"}, nil),
		age: prometheus.NewDesc("agora_saga_oldest_unfinished_age_seconds",
			"How long the unfinished instance of a type and status that has waited longest has been in that status (0: none).", []string{"type", "status"}, nil),
		deadline: prometheus.NewDesc("agora_saga_deadline_seconds",
			"A saga type's deadline: the sum of its steps' deadlines (0: none).", []string{"type"}, nil),
	})
}

type backlogCollector struct {
	backlog              func(ctx context.Context) ([]saga.Backlog, error)
	count, age, deadline *prometheus.Desc
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.age
	ch <- c.deadline
}

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	bl, err := c.backlog(ctx)
	if err != nil {
		return // the index is not there yet, or the database is down: no sample
	}
	now := time.Now()
	deadlines := map[string]time.Duration{}
	for _, b := range bl {
		status := strings.ToLower(string(b.Status))
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(b.Count), b.Type, status)
		age := 0.0
		if b.Count > 0 && !b.Oldest.IsZero() {
			age = max(now.Sub(b.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, b.Type, status)
		deadlines[b.Type] = b.Deadline
	}
	for typ, d := range deadlines {
		ch <- prometheus.MustNewConstMetric(c.deadline, prometheus.GaugeValue, d.Seconds(), typ)
	}
}

// Relay registers a gauge of relay r's lag (its log's head minus its
// checkpoint: what it has still to publish), read at scrape time (and by
// the sampler).
func (m *Metrics) Relay(r Lagger) {
	m.addLag(r)
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "agora_relay_lag_events",
		Help:        "Positions of its log (the event store, or an outbox) a relay has not published yet: the log's head minus the relay's checkpoint.",
		ConstLabels: prometheus.Labels{"relay": r.Name()},
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lag, err := r.Lag(ctx)
		if err != nil {
			return -1
		}
		return float64(lag)
	}))
}

func (m *Metrics) addLag(l Lagger) {
	m.lagMu.Lock()
	m.lags = append(m.lags, l)
	m.lagMu.Unlock()
}

// Consumer returns h counting the redeliveries of consumer name (a
// delivery whose attempt is past the first); the series exists from the
// start, at zero.
func (m *Metrics) Consumer(name string, h messaging.Handler) messaging.Handler {
	redelivered := m.consumerRedeliveries.WithLabelValues(name)
	return func(ctx context.Context, d messaging.Delivery) error {
		if d.Attempt > 1 {
			redelivered.Inc()
		}
		return h(ctx, d)
	}
}

// ConsumerPending records that durable consumer name has n messages of
// its stream not acknowledged yet (what the broker said when polled).
func (m *Metrics) ConsumerPending(name string, n uint64) {
	m.consumerPending.WithLabelValues(name).Set(float64(n))
	m.lagMu.Lock()
	m.pending[name] = n
	m.lagMu.Unlock()
}

// PollPending asks pending for each consumer's unacknowledged messages
// every interval (and at once), recording them with ConsumerPending, until
// ctx ends. Each consumer's series starts at zero; one pending cannot tell
// about keeps its last value.
func (m *Metrics) PollPending(ctx context.Context, every time.Duration, consumers []string, pending func(ctx context.Context, consumer string) (uint64, error)) error {
	for _, name := range consumers {
		m.ConsumerPending(name, 0)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, name := range consumers {
			pctx, cancel := context.WithTimeout(ctx, every)
			n, err := pending(pctx, name)
			cancel()
			if err == nil {
				m.ConsumerPending(name, n)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Bulkhead is one gateway cluster's bulkhead now.
type Bulkhead struct {
	// Cluster is the upstream cluster.
	Cluster string
	// InUse is how many requests hold a permit; Capacity, how many may.
	InUse, Capacity int
}

// Bulkheads registers gauges of the gateway's bulkheads, read at scrape
// time from bulkheads.
func (m *Metrics) Bulkheads(bulkheads func() []Bulkhead) {
	m.Registry.MustRegister(&bulkheadCollector{bulkheads: bulkheads,
		inUse: prometheus.NewDesc("agora_gateway_bulkhead_in_use",
			"Requests to a gateway upstream cluster holding a bulkhead permit now.", []string{"cluster"}, nil),
		capacity: prometheus.NewDesc("agora_gateway_bulkhead_capacity",
			"The bulkhead's size: the most requests a gateway upstream cluster may have in flight.", []string{"cluster"}, nil),
	})
}

type bulkheadCollector struct {
	bulkheads       func() []Bulkhead
	inUse, capacity *prometheus.Desc
}

func (c *bulkheadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.inUse; ch <- c.capacity }

func (c *bulkheadCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.bulkheads() {
		ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(b.InUse), b.Cluster)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(b.Capacity), b.Cluster)
	}
}

// RateLimited returns the function that counts a refusal by rate-limit
// class class, given the limit that refused ("client" or "tenant"): its
// series are bound here, once per class, and exist from the start.
func (m *Metrics) RateLimited(class string) func(limit string) {
	client, tenant := m.rateLimited.WithLabelValues(class, "client"), m.rateLimited.WithLabelValues(class, "tenant")
	return func(limit string) {
		switch limit {
		case "client":
			client.Inc()
		case "tenant":
			tenant.Inc()
		default:
			m.rateLimited.WithLabelValues(class, limit).Inc()
		}
	}
}

// CacheStats are a cache's counts since it started.
type CacheStats struct {
	// Hits are the lookups answered from process memory; Misses, the
	// others.
	Hits, Misses uint64
	// SharedLoads are the loads of misses the shared tier (Redis)
	// answered; SourceLoads, those that went to the source.
	SharedLoads, SourceLoads uint64
}

// Cache registers the counters of cache name, read at scrape time from
// stats: its hit ratio is hits / (hits + misses). Safe on a nil Metrics.
func (m *Metrics) Cache(name string, stats func() CacheStats) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(&cacheCollector{stats: stats, name: name,
		hits: prometheus.NewDesc("agora_cache_hits_total",
			"Cache lookups answered from process memory, by cache.", []string{"cache"}, nil),
		misses: prometheus.NewDesc("agora_cache_misses_total",
			"Cache lookups process memory could not answer, by cache.", []string{"cache"}, nil),
		loads: prometheus.NewDesc("agora_cache_loads_total",
			"Loads of cache misses by the tier that answered: shared (Redis) or source (the database); concurrent misses of one key share a load.",
			[]string{"cache", "tier"}, nil),
	})
}

type cacheCollector struct {
	stats               func() CacheStats
	name                string
	hits, misses, loads *prometheus.Desc
}

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hits
	ch <- c.misses
	ch <- c.loads
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits), c.name)
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses), c.name)
	ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(s.SharedLoads), c.name, "shared")
	ch <- prometheus.MustNewConstMetric(c.loads, prometheus.CounterValue, float64(s.SourceLoads), c.name, "source")
}
