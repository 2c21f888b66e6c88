package call_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// A transport makes answers reachable through an Exchange, as a caller
// would find them: in its own process, or in another one over the bus.
type transport struct {
	name string
	// wire is whether calls cross as JSON between processes.
	wire bool
	// serve returns an exchange on which answers are the only ones
	// reachable (none: nothing answers); they stop when t ends.
	serve func(t *testing.T, answers ...call.Answer) *call.Exchange
}

var transports = []transport{
	{name: "in-process", serve: inProcess},
	{name: "bus", wire: true, serve: overBus},
}

// eachTransport runs f once per transport, as a subtest.
func eachTransport(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { f(t, tr) })
	}
}

// inProcess is the exchange of a process that runs the owners' modules:
// the answers are added to it, and there is no bus.
func inProcess(t *testing.T, answers ...call.Answer) *call.Exchange {
	t.Helper()
	x := call.NewExchange(nil)
	x.Add(answers...)
	return x
}

// overBus serves answers on an embedded bus, as the owners' processes
// do, and returns the exchange of a caller on that bus that answers
// nothing itself. It returns once every answer's responder is
// subscribed.
func overBus(t *testing.T, answers ...call.Answer) *call.Exchange {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	bus, err := natsbus.Open(ctx, natsbus.Options{DataDir: t.TempDir(), Namespace: fmt.Sprintf("t%016x", rand.Uint64()),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		bus.Close()
	})
	for _, a := range answers {
		wg.Go(func() {
			if err := bus.Respond(ctx, a.Subject, a.Owner, a.Respond); !errors.Is(err, context.Canceled) {
				t.Errorf("respond on %s: %v", a.Subject, err)
			}
		})
	}
	for _, a := range answers {
		awaitResponder(t, bus, a.Subject)
	}
	return call.NewExchange(bus)
}

// awaitResponder waits until something answers subject on bus. It asks
// with a request no answer can decode, so nothing is done on its behalf.
func awaitResponder(t *testing.T, bus *natsbus.Bus, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := bus.Request(ctx, subject, []byte("not a request"))
		cancel()
		switch {
		case err == nil:
			return
		case !errors.Is(err, nats.ErrNoResponders):
			t.Fatalf("waiting for a responder on %s: %v", subject, err)
		case time.Now().After(deadline):
			t.Fatalf("nothing responds on %s after 10s", subject)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
