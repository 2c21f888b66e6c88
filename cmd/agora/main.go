// Command agora runs the Agora commerce platform.
//
//	agora serve                 the whole platform, embedded (SQLite), on :8080
//	agora audit [--json]        check the stores' invariants; exit status 1 on a violation
//	agora bench store [--json]  event-store throughput and latency
//	agora load [flags] URL      virtual customers against a running platform
//	agora migrate split         upgrade a single-store data directory to a store per context
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/google/uuid"
)

// gcPercent is the garbage collector's target when GOGC is not set. A
// server's live heap here is small and its garbage comes in a steady
// stream (JSON, records); collecting at 5× the live heap instead of 2×
// costs tens of megabytes and gives the CPU back to requests (about 15%
// more checkouts per second on two cores, measured with agora bench
// checkout). GOGC, when set, wins.
const gcPercent = 400

// memoryLimit is the Go runtime's soft memory limit for the commands that
// run the platform (serve, bench) when GOMEMLIMIT is not set. With
// gcPercent the heap would grow to five times what is live before a
// collection; the limit makes the collector run sooner once the runtime
// holds this much, so the process's memory reaches a plateau instead of
// following five times a live heap that grows for a while (caches
// filling). What the platform keeps is bounded by design (every cache,
// index and map says its bound), about 150 MB of heap embedded; SQLite's
// page caches are outside the Go heap and outside this limit: about 36
// MiB configured over an embedded platform's connections, which take
// about twice that in modernc's C allocator (a 4 KiB page and its header
// fill an 8 KiB slot). The limit leaves the collector room above a
// 200,000-order soak's live heap (about 155 MB, and 60 MB of partly
// used spans): at 288 MiB it collected nearly without pause at the end
// of that soak. It is a soft limit: a live heap above it
// is not an error, only collected more often. GOMEMLIMIT, when set, wins
// (GOMEMLIMIT=off: no limit).
const memoryLimit = 336 << 20

// setMemoryLimit applies memoryLimit to command unless GOMEMLIMIT is set.
func setMemoryLimit(command string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if command == "serve" || strings.HasPrefix(command, "bench") {
		debug.SetMemoryLimit(memoryLimit)
	}
}

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// Random UUIDs (request, order and event IDs, none of them secret)
	// come from a pool refilled in batches rather than one system call
	// each. Set before anything runs: the switch is not concurrency-safe.
	uuid.EnableRandPool()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, usage)
		} else if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "agora:", err)
		}
		os.Exit(2)
	}
	setMemoryLimit(m.command)
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "agora:", err)
		m.Close()
		os.Exit(1)
	}
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "agora:", err)
		os.Exit(1)
	}
}
