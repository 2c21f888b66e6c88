package saga_test

import (
	"context"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/platform/tracectx"
	"github.com/agora-commerce/agora/saga"
)

// TestStepsNameTheRequestThatStartedThem: a step runs with the request
// that started its instance (the metadata's correlation ID) as the
// request ID its log lines name.
func TestStepsNameTheRequestThatStartedThem(t *testing.T) {
	h := setup(t)
	e := saga.NewEngine(h.store, h.db, saga.Options{Logger: quiet()})
	seen := make(chan string, 1)
	saga.Register(e, saga.Definition[struct{}]{Type: "greet", Steps: []saga.Step[struct{}]{{Name: "hello",
		Action: func(ctx context.Context, _ *saga.Exec[struct{}]) error {
			select {
			case seen <- tracectx.RequestID(ctx):
			default:
			}
			return nil
		}}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	start := saga.WithMetadata(context.Background(), eventstore.Metadata{Tenant: "acme", CorrelationID: "req-7"})
	if _, err := e.Start(start, "greet", "g1", struct{}{}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-seen:
		if id != "req-7" {
			t.Errorf("the step's request ID is %q, want the starting request's req-7", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the step never ran")
	}
}
