package natsbus_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/agora-commerce/agora/messaging/natsbus"
)

func TestRequestRespond(t *testing.T) {
	buses(t, func(t *testing.T, b *natsbus.Bus) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// No responder yet: the request fails saying so (at once, not
		// when its ten seconds are up).
		if _, err := b.Request(ctx, "cmd.echo", []byte("x")); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("no responder: %v", err)
		}
		// Two responders in one queue: each request is answered once.
		var handled atomic.Int64
		for _, name := range []string{"a", "b"} {
			go b.Respond(ctx, "cmd.echo", "echo", func(_ context.Context, data []byte) []byte {
				handled.Add(1)
				return []byte(name + ":" + strings.ToUpper(string(data)))
			})
		}
		var answer []byte
		deadline := time.Now().Add(10 * time.Second) // the subscriptions reach the server
		for {
			var err error
			if answer, err = b.Request(ctx, "cmd.echo", []byte("hi")); err == nil || time.Now().After(deadline) {
				if err != nil {
					t.Fatal(err)
				}
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if s := string(answer); s != "a:HI" && s != "b:HI" {
			t.Fatalf("answer %q", s)
		}
		before := handled.Load()
		for range 20 {
			if _, err := b.Request(ctx, "cmd.echo", []byte("again")); err != nil {
				t.Fatal(err)
			}
		}
		if n := handled.Load() - before; n != 20 {
			t.Fatalf("20 requests were handled %d times", n)
		}
		// A responder that does not answer in time: the request ends with its context.
		go b.Respond(ctx, "cmd.slow", "slow", func(ctx context.Context, _ []byte) []byte {
			<-ctx.Done()
			return nil
		})
		deadline = time.Now().Add(10 * time.Second)
		for {
			short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
			_, err := b.Request(short, "cmd.slow", nil)
			stop()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			}
			if !errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
				t.Fatalf("slow responder: %v", err)
			}
		}
	})
}
