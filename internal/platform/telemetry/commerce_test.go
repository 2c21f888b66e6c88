package telemetry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/telemetry"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/saga"
)

func TestHTTPRoutesNameRouteAndService(t *testing.T) {
	m := telemetry.New()
	// As in the gateway: the handler serves a copy of the request, so the
	// pattern its mux matched never reaches the wrapper.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	copying := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { mux.ServeHTTP(w, r.WithContext(r.Context())) })
	table := http.NewServeMux()
	table.HandleFunc("GET /api/v1/orders/{id}", func(http.ResponseWriter, *http.Request) {})
	m.Routes(func(r *http.Request) (string, string) {
		if _, pattern := table.Handler(r); pattern != "" {
			return pattern, "ordering"
		}
		return "", ""
	})
	h := m.HTTP(copying)
	for _, path := range []string{"/api/v1/orders/1", "/api/v1/orders/2", "/elsewhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	x := scrape(t, m)
	if got := x.value(t, "agora_http_requests_total", l("service", "ordering", "route", "GET /api/v1/orders/{id}", "method", "GET", "code", "200")); got != 2 {
		t.Errorf("orders = %v, want 2", got)
	}
	if got := x.value(t, "agora_http_requests_total", l("service", "", "route", "unmatched", "method", "GET", "code", "404")); got != 1 {
		t.Errorf("unmatched = %v, want 1", got)
	}
}

// wrapping is a writer of a handler between the metrics and the route.
type wrapping struct{ http.ResponseWriter }

func (w wrapping) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestHandlersNameTheirRoute(t *testing.T) {
	m := telemetry.New()
	m.Routes(func(*http.Request) (string, string) { t.Error("looked up a route a handler named"); return "", "" })
	h := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner := wrapping{w}
		var u http.ResponseWriter = inner
		for {
			if s, ok := u.(telemetry.RouteSetter); ok {
				s.SetRoute("GET /api/v1/products/{id}", "catalog")
				break
			}
			u = u.(interface{ Unwrap() http.ResponseWriter }).Unwrap()
		}
		inner.WriteHeader(http.StatusNotFound)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/products/p1", nil))
	x := scrape(t, m)
	if got := x.value(t, "agora_http_requests_total", l("service", "catalog", "route", "GET /api/v1/products/{id}", "method", "GET", "code", "404")); got != 1 {
		t.Errorf("requests = %v, want 1", got)
	}
}

func TestHTTPWrapperAllocatesOnlyItsRecorder(t *testing.T) {
	m := telemetry.New()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	h := m.HTTP(ok)
	w, r := httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil)
	h.ServeHTTP(w, r) // binds the series
	// The wrapper's own response writer is its one allocation.
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); n > 1 {
		t.Errorf("%v allocations per request, want at most 1 (the status recorder)", n)
	}
}

func TestSagaObserver(t *testing.T) {
	m := telemetry.New()
	o := m.Sagas()
	o.Started("checkout")
	o.Started("checkout")
	o.Step("checkout", "reserve_stock", false, saga.OutcomeCompleted, 3*time.Millisecond)
	o.Step("checkout", "capture_payment", false, saga.OutcomeRejected, 20*time.Millisecond)
	o.Step("checkout", "reserve_stock", true, saga.OutcomeCompleted, time.Millisecond)
	o.Ended("checkout", saga.Completed, 80*time.Millisecond)
	o.Ended("checkout", saga.Compensated, 2*time.Second)
	x := scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agora_saga_started_total", l("type", "checkout"), 2},
		{"agora_saga_ended_total", l("type", "checkout", "status", "completed"), 1},
		{"agora_saga_ended_total", l("type", "checkout", "status", "compensated"), 1},
		{"agora_saga_duration_seconds_count", l("type", "checkout", "status", "completed"), 1},
		{"agora_saga_duration_seconds_bucket", l("type", "checkout", "status", "compensated", "le", "1"), 0},
		{"agora_saga_duration_seconds_bucket", l("type", "checkout", "status", "compensated", "le", "2.5"), 1},
		{"agora_saga_step_duration_seconds_count", l("type", "checkout", "step", "reserve_stock", "phase", "action", "outcome", "completed"), 1},
		{"agora_saga_step_duration_seconds_count", l("type", "checkout", "step", "capture_payment", "phase", "action", "outcome", "rejected"), 1},
		{"agora_saga_step_duration_seconds_count", l("type", "checkout", "step", "reserve_stock", "phase", "compensation", "outcome", "completed"), 1},
	} {
		if got := x.value(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestSagaBacklog(t *testing.T) {
	m := telemetry.New()
	fail := false
	m.SagaBacklog(func(context.Context) ([]saga.Backlog, error) {
		if fail {
			return nil, errors.New("no index yet")
		}
		return []saga.Backlog{
			{Type: "checkout", Status: saga.Started, Count: 3, Oldest: time.Now().Add(-time.Minute), Deadline: 90 * time.Second},
			{Type: "checkout", Status: saga.Compensating, Deadline: 90 * time.Second},
			{Type: "checkout", Status: saga.Failed, Count: 1, Oldest: time.Now().Add(-time.Hour), Deadline: 90 * time.Second},
		}, nil
	})
	x := scrape(t, m)
	if got := x.value(t, "agora_saga_instances", l("type", "checkout", "status", "started")); got != 3 {
		t.Errorf("started = %v", got)
	}
	if got := x.value(t, "agora_saga_instances", l("type", "checkout", "status", "compensating")); got != 0 {
		t.Errorf("compensating = %v", got)
	}
	if got := x.value(t, "agora_saga_oldest_unfinished_age_seconds", l("type", "checkout", "status", "started")); got < 59 || got > 70 {
		t.Errorf("oldest started age = %v, want about 60", got)
	}
	if got := x.value(t, "agora_saga_oldest_unfinished_age_seconds", l("type", "checkout", "status", "compensating")); got != 0 {
		t.Errorf("oldest compensating age = %v, want 0 (none)", got)
	}
	if got := x.value(t, "agora_saga_deadline_seconds", l("type", "checkout")); got != 90 {
		t.Errorf("deadline = %v", got)
	}
	fail = true
	x = scrape(t, m) // a failing backlog leaves the rest of the scrape alone
	x.absent(t, "agora_saga_instances")
}

func TestCheckouts(t *testing.T) {
	m := telemetry.New()
	x := scrape(t, m)
	// Every series is there before the first checkout.
	if got := x.value(t, "agora_checkouts_ended_total", l("status", "cancelled", "reason", "timeout")); got != 0 {
		t.Errorf("timeouts at start = %v", got)
	}
	if got := x.value(t, "agora_checkout_duration_seconds_count", l("status", "confirmed")); got != 0 {
		t.Errorf("confirmed durations at start = %v", got)
	}
	m.CheckoutEnded(true, "ignored", 40*time.Millisecond)
	m.CheckoutEnded(false, "out_of_stock", 30*time.Millisecond)
	m.CheckoutEnded(false, "something new", 30*time.Second)
	var none *telemetry.Metrics
	none.CheckoutEnded(true, "", time.Second) // a module built without metrics
	none.CheckoutsInFlight(func(context.Context) (int, error) { return 0, nil })
	m.CheckoutsInFlight(func(context.Context) (int, error) { return 4, nil })
	m.CheckoutsInFlight(func(context.Context) (int, error) { return 5, nil }) // the first counts
	x = scrape(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agora_checkouts_ended_total", l("status", "confirmed", "reason", ""), 1},
		{"agora_checkouts_ended_total", l("status", "cancelled", "reason", "out_of_stock"), 1},
		{"agora_checkouts_ended_total", l("status", "cancelled", "reason", "other"), 1},
		{"agora_checkout_duration_seconds_bucket", l("status", "confirmed", "le", "0.05"), 1},
		{"agora_checkout_duration_seconds_bucket", l("status", "cancelled", "le", "0.5"), 1},
		{"agora_checkout_duration_seconds_count", l("status", "cancelled"), 2},
		{"agora_checkouts_in_flight", l(), 4},
	} {
		if got := x.value(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestConsumersRelaysGatewayAndCache(t *testing.T) {
	m := telemetry.New()
	var handled int
	h := m.Consumer("inventory-reservations", func(context.Context, messaging.Delivery) error { handled++; return nil })
	for _, attempt := range []int{1, 2, 3, 1} {
		if err := h(context.Background(), messaging.Delivery{Attempt: attempt}); err != nil {
			t.Fatal(err)
		}
	}
	relay := &lagger{name: "events", lag: 12}
	m.Relay(relay)
	m.Bulkheads(func() []telemetry.Bulkhead {
		return []telemetry.Bulkhead{{Cluster: "ordering", InUse: 3, Capacity: 64}}
	})
	refused := m.RateLimited("write")
	refused("tenant")
	refused("tenant")
	m.Cache("catalog", func() telemetry.CacheStats {
		return telemetry.CacheStats{Hits: 90, Misses: 10, SharedLoads: 3, SourceLoads: 6}
	})

	x := scrape(t, m)
	if handled != 4 {
		t.Errorf("handled %d deliveries, want 4", handled)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agora_consumer_redeliveries_total", l("consumer", "inventory-reservations"), 2},
		{"agora_relay_lag_events", l("relay", "events"), 12},
		{"agora_gateway_bulkhead_in_use", l("cluster", "ordering"), 3},
		{"agora_gateway_bulkhead_capacity", l("cluster", "ordering"), 64},
		{"agora_gateway_ratelimit_refusals_total", l("class", "write", "limit", "tenant"), 2},
		{"agora_gateway_ratelimit_refusals_total", l("class", "write", "limit", "client"), 0},
		{"agora_cache_hits_total", l("cache", "catalog"), 90},
		{"agora_cache_misses_total", l("cache", "catalog"), 10},
		{"agora_cache_loads_total", l("cache", "catalog", "tier", "shared"), 3},
		{"agora_cache_loads_total", l("cache", "catalog", "tier", "source"), 6},
	} {
		if got := x.value(t, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if x.types["agora_cache_hits_total"] != "counter" || x.types["agora_relay_lag_events"] != "gauge" {
		t.Errorf("types: %v", x.types)
	}

	// The poller records what the broker says, keeping a consumer's last
	// value when the broker cannot tell.
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan error, 1)
	go func() {
		done <- m.PollPending(ctx, time.Millisecond, []string{"inventory-reservations", "other"}, func(_ context.Context, name string) (uint64, error) {
			if name == "other" {
				return 0, errors.New("broker away")
			}
			calls++
			if calls >= 3 {
				cancel()
			}
			return 7, nil
		})
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("poll ended with %v", err)
	}
	x = scrape(t, m)
	if got := x.value(t, "agora_consumer_pending_messages", l("consumer", "inventory-reservations")); got != 7 {
		t.Errorf("pending = %v, want 7", got)
	}
	if got := x.value(t, "agora_consumer_pending_messages", l("consumer", "other")); got != 0 {
		t.Errorf("pending of a consumer the broker never told about = %v, want 0", got)
	}
}
