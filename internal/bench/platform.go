package bench

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/ordering"
	"github.com/agora-commerce/agora/internal/server"
)

// checkoutPlatform is where the checkout benchmark places its orders: the
// platform booted in this process (embedded), or one run as a process per
// context (distributed). The placing and the measuring are the same for
// both; only where the platform is, how an order's end is seen and how
// its CPU and memory are read differ.
type checkoutPlatform interface {
	// client is an HTTP client of the gateway, logged in as benchAdmin.
	client() benchClient
	// watch starts calling ended with the orders that end from now on
	// (a batch at a time, with the time it was seen), until ctx ends. It
	// returns once orders ending after it returned cannot be missed. An
	// order may be reported more than once (ended ignores the repeats).
	watch(ctx context.Context, ended func(now time.Time, ends []orderEnd)) error
	// cpu is the CPU time used so far by the platform and this process
	// (the benchmark's clients), or 0 where it cannot be read.
	cpu() time.Duration
	// memory is the platform's resident memory now.
	memory() memorySample
	// processes are the platform's processes with the CPU each used so
	// far (none when embedded: cpu says it all).
	processes() []processCPU
	// close stops the platform and removes what it made.
	close() error
}

// orderEnd is an order's terminal event, as the benchmark sees it.
type orderEnd struct {
	id        string
	confirmed bool
	reason    string // why it was cancelled
}

// memorySample is a platform's memory at one moment. HeapMB and
// OutsideGoMB are known only in process (0 otherwise).
type memorySample struct {
	RSSMB, HeapMB, OutsideGoMB float64
}

// processCPU is one process and the CPU it has used (ok: it could be
// read).
type processCPU struct {
	name string
	pid  int
	cpu  time.Duration
	ok   bool
}

// embedded is the platform booted in this process.
type embedded struct {
	srv  *server.Server
	c    benchClient
	stop func()
}

// bootEmbedded opens the platform of cfg in process; see boot.
func bootEmbedded(ctx context.Context, cfg server.Config, idle int) (*embedded, error) {
	srv, c, stop, err := boot(ctx, cfg, idle)
	if err != nil {
		return nil, err
	}
	return &embedded{srv: srv, c: c, stop: stop}, nil
}

func (e *embedded) client() benchClient { return e.c }

// watch follows the ordering context's log from its head.
func (e *embedded) watch(ctx context.Context, ended func(time.Time, []orderEnd)) error {
	orders := e.srv.StoreOf("ordering")
	head, err := orders.Head(ctx)
	if err != nil {
		return err
	}
	confirmedType, cancelledType := (ordering.OrderConfirmed{}).EventType(), (ordering.OrderCancelled{}).EventType()
	go eventstore.Subscribe(ctx, orders, head, 1000, func(_ context.Context, batch []eventstore.Record) error {
		now := time.Now()
		var ends []orderEnd
		for _, r := range batch {
			if r.Type != confirmedType && r.Type != cancelledType {
				continue
			}
			end := orderEnd{id: strings.TrimPrefix(r.StreamID, "order-"), confirmed: r.Type == confirmedType}
			if !end.confirmed {
				var e ordering.OrderCancelled
				_ = json.Unmarshal(r.Data, &e)
				end.reason = e.Reason
			}
			ends = append(ends, end)
		}
		if len(ends) > 0 {
			ended(now, ends)
		}
		return nil
	})
	return nil
}

func (e *embedded) cpu() time.Duration { return cpuTime() }

func (e *embedded) memory() memorySample {
	rss := rssMB()
	return memorySample{RSSMB: rss, HeapMB: heapMB(), OutsideGoMB: rss - goHeldMB()}
}

func (e *embedded) processes() []processCPU { return nil }

func (e *embedded) close() error { e.stop(); return nil }
