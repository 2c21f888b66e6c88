// Package eventstream serves the live stream of integration events to
// operators: Server-Sent Events of their tenant's events on the bus.
package eventstream

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/messaging"
)

// Handler serves GET /api/v1/events/stream: the integration events of
// the caller's tenant on streams of bus, as Server-Sent Events, from the
// moment the stream opens (each stream is its own ephemeral consumer of
// the bus), with a comment line every 15 s to keep idle connections open.
// The route table lets only admins in.
func Handler(bus messaging.Subscriber, streams ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(bus, streams, w, r) })
}

func serve(bus messaging.Subscriber, streams []string, w http.ResponseWriter, r *http.Request) {
	c, err := auth.Caller(r)
	if err != nil {
		auth.Challenge(w, r, err)
		return
	}
	sse := httpapi.NewSSE(w)
	if err := sse.Comment("agora events of tenant " + c.Tenant); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	handle := func(_ context.Context, d messaging.Delivery) error {
		tenant := d.Headers[messaging.HeaderTenant]
		if tenant == "" {
			tenant = auth.DefaultTenant
		}
		if tenant != c.Tenant || !json.Valid(d.Data) {
			return nil
		}
		// An SSE data line may not hold a newline; compact JSON holds none.
		var b bytes.Buffer
		if err := json.Compact(&b, d.Data); err != nil {
			return nil
		}
		if err := sse.Send(d.ID, d.Type, b.Bytes()); err != nil {
			cancel() // the client went away
		}
		return nil
	}
	var wg sync.WaitGroup
	for _, stream := range streams {
		wg.Go(func() {
			_ = bus.Subscribe(ctx, messaging.Consumer{Name: "sse", Stream: stream, Ephemeral: true}, handle)
		})
	}
	tick := time.NewTicker(httpapi.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			if err := sse.Comment("keep-alive"); err != nil {
				cancel()
			}
		}
	}
}
