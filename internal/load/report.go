package load

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is a run's result; its JSON form is documented in
// docs/benchmarks.md ("Load generator").
type Report struct {
	// URL is the platform driven.
	URL string `json:"url"`
	// Users is the number of virtual users (customers) that ran.
	Users int `json:"users"`
	// Seed seeded the scenario picks.
	Seed uint64 `json:"seed"`
	// Mix is the scenarios' weights.
	Mix map[string]int `json:"mix"`
	// SetupSec is how long registering, funding and logging in took
	// (not part of the run's rates).
	SetupSec float64 `json:"setup_sec"`
	// DurationSec is how long the load ran, from the first scenario to
	// the last answer.
	DurationSec float64 `json:"duration_sec"`
	// Interrupted: the run was stopped (Ctrl-C) before its end.
	Interrupted bool `json:"interrupted"`
	// Scenarios has one row per scenario, in a fixed order.
	Scenarios []ScenarioReport `json:"scenarios"`
	// Total adds up every scenario.
	Total ScenarioReport `json:"total"`
	// Orders is what became of the orders placed.
	Orders OrdersReport `json:"orders"`
	// Transfers is what became of the transfers started.
	Transfers TransfersReport `json:"transfers"`
	// ErrorSamples are the most frequent errors (at most 10).
	ErrorSamples []ErrorSample `json:"error_samples"`
	// MaxErrors is the --max-errors the run was held to (-1: none).
	MaxErrors int `json:"max_errors"`
}

// ScenarioReport is one scenario's row: HTTP requests and how they
// ended. Latencies are of every request but the 429s, in milliseconds.
type ScenarioReport struct {
	Name             string  `json:"name"`
	Requests         uint64  `json:"requests"`
	OK               uint64  `json:"ok"`
	ExpectedRefusals uint64  `json:"expected_refusals"`
	Errors           uint64  `json:"errors"`
	Throttled        uint64  `json:"throttled_429"`
	P50Ms            float64 `json:"p50_ms"`
	P90Ms            float64 `json:"p90_ms"`
	P99Ms            float64 `json:"p99_ms"`
	MaxMs            float64 `json:"max_ms"`
	RequestsPerSec   float64 `json:"requests_per_sec"`
}

// OrdersReport counts the orders placed by their end. Latencies run from
// the POST to the terminal status, in milliseconds.
type OrdersReport struct {
	Placed    uint64 `json:"placed"`
	Confirmed uint64 `json:"confirmed"`
	// Cancelled counts cancelled orders by reason (out_of_stock,
	// insufficient_funds, …).
	Cancelled map[string]uint64 `json:"cancelled"`
	// Unfinished were not seen to end before the run stopped.
	Unfinished uint64  `json:"unfinished"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
}

// TransfersReport counts the transfers started by their end.
type TransfersReport struct {
	Started    uint64 `json:"started"`
	Completed  uint64 `json:"completed"`
	Failed     uint64 `json:"failed"`
	Unfinished uint64 `json:"unfinished"`
}

// ErrorSample is one distinct error and how often it happened.
type ErrorSample struct {
	Scenario string `json:"scenario"`
	Error    string `json:"error"`
	Count    int    `json:"count"`
}

// WriteJSON writes r as one indented JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as a table per scenario and the totals, then the
// orders' and transfers' outcomes and the most frequent errors.
func (r Report) WriteTable(w io.Writer) error {
	state := ""
	if r.Interrupted {
		state = ", interrupted"
	}
	fmt.Fprintf(w, "agora load %s: %d users, %.1f s (setup %.1f s)%s\n\n", r.URL, r.Users, r.DurationSec, r.SetupSec, state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\tok\texpected refusals\terrors\t429s\tp50 ms\tp90 ms\tp99 ms\tmax ms\treq/s\t")
	for _, s := range append(slices.Clone(r.Scenarios), r.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", s.Name, s.Requests, s.OK, s.ExpectedRefusals,
			s.Errors, s.Throttled, s.P50Ms, s.P90Ms, s.P99Ms, s.MaxMs, s.RequestsPerSec)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	o := r.Orders
	var cancelled []string
	for _, k := range slices.Sorted(maps.Keys(o.Cancelled)) {
		cancelled = append(cancelled, fmt.Sprintf("%s %d", k, o.Cancelled[k]))
	}
	if len(cancelled) == 0 {
		cancelled = []string{"none"}
	}
	fmt.Fprintf(w, "\norders: %d placed, %d confirmed, cancelled: %s; %d unfinished; submit → end p50 %.1f ms, p99 %.1f ms\n",
		o.Placed, o.Confirmed, strings.Join(cancelled, ", "), o.Unfinished, o.P50Ms, o.P99Ms)
	t := r.Transfers
	fmt.Fprintf(w, "transfers: %d started, %d completed, %d failed, %d unfinished\n", t.Started, t.Completed, t.Failed, t.Unfinished)
	if len(r.ErrorSamples) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		for _, e := range r.ErrorSamples {
			fmt.Fprintf(w, "  %6d  %-8s  %s\n", e.Count, e.Scenario, e.Error)
		}
	}
	return nil
}
