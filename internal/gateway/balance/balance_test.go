package balance_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/balance"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/testenv"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func reg(t *testing.T, ins ...registry.Instance) *registry.Static {
	t.Helper()
	r := registry.NewStatic()
	for _, in := range ins {
		if in.URL == "" {
			in.URL = "http://" + in.ID + ".invalid"
		}
		if err := r.Register("c", in); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func picks(t *testing.T, b *balance.Balancer, n int) (map[string]int, []string) {
	t.Helper()
	counts := map[string]int{}
	var order []string
	for range n {
		in, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		counts[in.ID]++
		order = append(order, in.ID)
	}
	return counts, order
}

func TestRoundRobin(t *testing.T) {
	b := balance.New(reg(t, registry.Instance{ID: "a"}, registry.Instance{ID: "b"}, registry.Instance{ID: "c"}), "c", balance.Config{Logger: quiet()})
	counts, order := picks(t, b, 300)
	if counts["a"] != 100 || counts["b"] != 100 || counts["c"] != 100 {
		t.Fatalf("distribution %v", counts)
	}
	if !slices.Equal(order[:6], []string{"a", "b", "c", "a", "b", "c"}) {
		t.Fatalf("order %v", order[:6])
	}
}

func TestWeighted(t *testing.T) {
	b := balance.New(reg(t, registry.Instance{ID: "a", Weight: 1}, registry.Instance{ID: "b", Weight: 3}), "c", balance.Config{Logger: quiet()})
	counts, order := picks(t, b, 400)
	if counts["a"] != 100 || counts["b"] != 300 {
		t.Fatalf("distribution %v", counts)
	}
	// Smooth: the heavy instance is never picked more than 3 times in a row.
	run := 0
	for _, id := range order {
		if id == "b" {
			run++
		} else {
			run = 0
		}
		if run > 3 {
			t.Fatalf("not smooth: %v", order[:20])
		}
	}
}

func TestCanaryShare(t *testing.T) {
	r := reg(t, registry.Instance{ID: "s1"}, registry.Instance{ID: "s2"}, registry.Instance{ID: "canary", Canary: true})
	clk := testenv.NewClock()
	b := balance.New(r, "c", balance.Config{CanaryPercent: 10, ConsecutiveFailures: 1, Now: clk.Now, Logger: quiet()})
	counts, _ := picks(t, b, 1000)
	if counts["canary"] != 100 || counts["s1"] != 450 || counts["s2"] != 450 {
		t.Fatalf("distribution %v", counts)
	}

	// Without a canary share the canary gets nothing while stable
	// instances are healthy, and everything when none is.
	b = balance.New(r, "c", balance.Config{ConsecutiveFailures: 1, Now: clk.Now, Logger: quiet()})
	if counts, _ := picks(t, b, 100); counts["canary"] != 0 {
		t.Fatalf("canary got %d at 0%%", counts["canary"])
	}
	b.Report("s1", false)
	b.Report("s2", false)
	if counts, _ := picks(t, b, 10); counts["canary"] != 10 {
		t.Fatalf("with stable ejected: %v", counts)
	}
}

func TestEjectionGrowsAndRecovers(t *testing.T) {
	clk := testenv.NewClock()
	b := balance.New(reg(t, registry.Instance{ID: "a"}, registry.Instance{ID: "b"}, registry.Instance{ID: "c"}), "c",
		balance.Config{ConsecutiveFailures: 3, BaseEjection: 10 * time.Second, MaxEjection: 40 * time.Second, Now: clk.Now, Logger: quiet()})
	failN := func(id string, n int) {
		for range n {
			b.Report(id, false)
		}
	}
	ejectedFor := func() time.Duration {
		t.Helper()
		if got := b.Ejected(); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("ejected %v, want [b]", got)
		}
		if counts, _ := picks(t, b, 30); counts["b"] != 0 || counts["a"] != 15 || counts["c"] != 15 {
			t.Fatalf("an ejected instance was picked: %v", counts)
		}
		var d time.Duration
		for len(b.Ejected()) > 0 {
			clk.Advance(5 * time.Second)
			d += 5 * time.Second
		}
		if counts, _ := picks(t, b, 30); counts["b"] != 10 {
			t.Fatalf("the instance did not come back: %v", counts)
		}
		return d
	}

	// Fewer than 3 in a row, or interrupted by a success: no ejection.
	failN("b", 2)
	b.Report("b", true)
	failN("b", 2)
	if got := b.Ejected(); len(got) != 0 {
		t.Fatalf("ejected %v after non-consecutive failures", got)
	}
	b.Report("b", false) // third in a row
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
		if i > 0 {
			failN("b", 3)
		}
		if d := ejectedFor(); d != want {
			t.Fatalf("ejection %d lasted %v, want %v", i+1, d, want)
		}
	}

	// Failures reported for requests sent before an ejection do not
	// extend it.
	failN("b", 3)
	failN("b", 30)
	clk.Advance(40 * time.Second)
	if got := b.Ejected(); len(got) != 0 {
		t.Fatalf("still ejected: %v", got)
	}

	// Healthy stretches decay the count: after enough calm, the next
	// ejection is short again.
	for range 5 {
		clk.Advance(10 * time.Second)
		b.Report("b", true)
	}
	failN("b", 3)
	if d := ejectedFor(); d != 10*time.Second {
		t.Fatalf("after recovery the ejection lasted %v, want 10s", d)
	}
}

func TestPanicRouting(t *testing.T) {
	clk := testenv.NewClock()
	b := balance.New(reg(t, registry.Instance{ID: "a"}, registry.Instance{ID: "b"}), "c", balance.Config{ConsecutiveFailures: 1, Now: clk.Now, Logger: quiet()})
	b.Report("a", false)
	b.Report("b", false)
	if counts, _ := picks(t, b, 10); counts["a"]+counts["b"] != 10 {
		t.Fatalf("all ejected: %v", counts)
	}
}

func TestNoInstances(t *testing.T) {
	b := balance.New(registry.NewStatic(), "empty", balance.Config{})
	if _, err := b.Pick(); !errors.Is(err, balance.ErrNoInstances) {
		t.Fatalf("Pick = %v", err)
	}
	_, err := b.Transport(nil).RoundTrip(httptest.NewRequest("GET", "http://gateway/x", nil))
	if !errors.Is(err, balance.ErrNoInstances) {
		t.Fatalf("RoundTrip = %v", err)
	}
}

// TestTransportEjectsFailingUpstream runs real HTTP: one instance answers
// 500, one is down (connection refused), one is healthy.
func TestTransportEjectsFailingUpstream(t *testing.T) {
	var hits [3]atomic.Int64
	var healthy atomic.Bool
	serve := func(i int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			if i == 0 && !healthy.Load() {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "%d %s", i, r.URL.Path)
		}))
	}
	bad, good := serve(0), serve(2)
	defer bad.Close()
	defer good.Close()
	down := serve(1)
	down.Close()

	r := registry.NewStatic()
	for i, u := range []string{bad.URL, down.URL, good.URL + "/prefix/"} {
		if err := r.Register("c", registry.Instance{ID: fmt.Sprint(i), URL: u}); err != nil {
			t.Fatal(err)
		}
	}
	clk := testenv.NewClock()
	b := balance.New(r, "c", balance.Config{ConsecutiveFailures: 2, BaseEjection: time.Minute, Now: clk.Now, Logger: quiet()})
	client := &http.Client{Transport: b.Transport(nil), Timeout: 10 * time.Second}
	get := func() (int, string) {
		t.Helper()
		resp, err := client.Get("http://gateway/api/x")
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for range 6 { // two rounds: each bad instance fails twice
		get()
	}
	if got := b.Ejected(); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("ejected %v", got)
	}
	before := hits[0].Load()
	for range 10 {
		if status, body := get(); status != 200 || body != "2 /prefix/api/x" {
			t.Fatalf("got %d %q", status, body)
		}
	}
	if hits[0].Load() != before {
		t.Fatal("the ejected instance still got requests")
	}

	healthy.Store(true)
	clk.Advance(time.Minute)
	ok := 0
	for range 10 {
		if status, _ := get(); status == 200 {
			ok++
		}
	}
	if hits[0].Load() == before {
		t.Fatal("the instance did not return after its ejection")
	}
	if got := b.Ejected(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("ejected %v, want the down instance again", got)
	}
	if ok < 8 {
		t.Fatalf("only %d of 10 succeeded after recovery", ok)
	}
}

func TestConcurrentPickReport(t *testing.T) {
	b := balance.New(reg(t, registry.Instance{ID: "a"}, registry.Instance{ID: "b", Canary: true}), "c", balance.Config{CanaryPercent: 50, ConsecutiveFailures: 3, Logger: quiet()})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				in, err := b.Pick()
				if err != nil {
					t.Error(err)
					return
				}
				b.Report(in.ID, (i+w)%7 != 0)
				_ = b.Ejected()
			}
		}()
	}
	wg.Wait()
}
