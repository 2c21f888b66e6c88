package progress_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/progress"
)

// syncBuffer is a bytes.Buffer safe for the Bar's ticker and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPlainLines: off a terminal, a Bar writes a plain line every
// Interval (name, elapsed seconds, the count of its total, the rate,
// what is going on), one at once when a count reaches its total, log
// lines as they come, and nothing after Finish — no escape codes, no
// carriage returns.
func TestPlainLines(t *testing.T) {
	var out syncBuffer
	b := progress.New(&out, progress.Options{Name: "reshard", Unit: "events", Rate: true, Interval: 20 * time.Millisecond})
	b.Describe("moving events")
	b.Set(3, 10)
	time.Sleep(70 * time.Millisecond)
	b.Logf("a line of its own: %d", 7)
	b.Set(10, 10)
	b.Describe("verifying")
	b.Set(1, 0) // a new count, of no known end
	time.Sleep(50 * time.Millisecond)
	b.Finish()
	got := out.String()
	b.Set(2, 0)
	b.Describe("after the end")
	time.Sleep(50 * time.Millisecond)
	if after := out.String(); after != got {
		t.Errorf("lines after Finish:\n%s", strings.TrimPrefix(after, got))
	}
	if strings.ContainsAny(got, "\r\x1b") {
		t.Errorf("terminal codes in plain output:\n%q", got)
	}
	for _, want := range []string{
		"reshard: 0 s: 3 of 10 events (",
		"/s): moving events\n",
		"a line of its own: 7\n",
		"reshard: 0 s: 10 of 10 events (",
		"reshard: 0 s: 1 events (",
		"/s): verifying\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if n := strings.Count(got, "3 of 10 events"); n < 1 {
		t.Errorf("%d periodic lines of 3 of 10, want one at least:\n%s", n, got)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "reshard: ") && l != "a line of its own: 7" {
			t.Errorf("unexpected line %q", l)
		}
	}
}

// TestPlainWithoutCount: without a Unit, a plain line is the elapsed time
// and the description only, as agora load writes them.
func TestPlainWithoutCount(t *testing.T) {
	var out syncBuffer
	b := progress.New(&out, progress.Options{Name: "load", Interval: 10 * time.Millisecond})
	b.Set(500, 30_000)
	b.Describe("12 req, 3 req/s")
	time.Sleep(40 * time.Millisecond)
	b.Finish()
	if got := out.String(); !strings.Contains(got, "load: 0 s: 12 req, 3 req/s\n") || strings.Contains(got, "30000") {
		t.Errorf("lines:\n%s", got)
	}
}

// TestCountStartsOver: a count going back to less than it was (the next
// phase, of the same total), or in another unit, is a new count, whose
// end is written too.
func TestCountStartsOver(t *testing.T) {
	var out syncBuffer
	b := progress.New(&out, progress.Options{Name: "bench store", Unit: "events", Interval: time.Hour})
	b.Describe("group commit")
	b.Set(10, 10)
	b.Describe("catch-up read")
	b.Set(4, 10)
	b.Set(10, 10)
	b.SetUnit("orders") // the same count in another unit: a new count
	b.Describe("placing")
	b.Set(10, 10)
	b.Finish()
	got := out.String()
	if want := "bench store: 0 s: 10 of 10 events: group commit\nbench store: 0 s: 10 of 10 events: catch-up read\nbench store: 0 s: 10 of 10 orders: placing\n"; got != want {
		t.Errorf("lines:\n%s", got)
	}
}

// TestNothingBeforeAReport: a Bar that was never told anything writes
// nothing.
func TestNothingBeforeAReport(t *testing.T) {
	var out syncBuffer
	b := progress.New(&out, progress.Options{Name: "quiet", Unit: "events", Interval: 5 * time.Millisecond})
	time.Sleep(30 * time.Millisecond)
	b.Finish()
	if got := out.String(); got != "" {
		t.Errorf("wrote %q", got)
	}
}

// TestTerminal: on a terminal, the bar is drawn in place (carriage
// returns), log lines land between draws, and Finish clears it.
func TestTerminal(t *testing.T) {
	var out syncBuffer
	b := progress.New(&out, progress.Options{Name: "bench", Unit: "turns", Terminal: true})
	b.Describe("round 1: gateway")
	b.Set(1, 4)
	b.Logf("round 1 done")
	b.Set(4, 4)
	b.Finish()
	got := out.String()
	if !strings.Contains(got, "\r") || !strings.Contains(got, "round 1: gateway") || !strings.Contains(got, "round 1 done\n") {
		t.Errorf("terminal output:\n%q", got)
	}
}
