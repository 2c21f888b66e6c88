package natsbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/messaging"
	"github.com/agora-commerce/agora/messaging/natsbus"
)

// BenchmarkRelay measures the relay from a SQLite event log to the
// embedded broker: b.N events appended beforehand, then published.
func BenchmarkRelay(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%v", sync), func(b *testing.B) {
			ctx := context.Background()
			bus, err := natsbus.Open(ctx, natsbus.Options{DataDir: b.TempDir(), SyncAlways: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer bus.Close()
			store, db := testenv.SQLite(b)
			if err := bus.EnsureStream(ctx, "bench", "bench.>"); err != nil {
				b.Fatal(err)
			}
			appendMany(b, store, b.N)
			cps, _ := messaging.SQLCheckpoints(ctx, db)
			r := messaging.NewRelay(messaging.EventLog(store, func(r eventstore.Record) (messaging.Message, bool, error) {
				return messaging.Message{Subject: "bench.e", Type: r.Type, Data: r.Data}, true, nil
			}), bus, cps, messaging.RelayOptions{Name: "bench", Tail: bus.Tail("bench"), Logger: quiet()})
			head, _ := store.Head(ctx)
			b.ResetTimer()
			start := time.Now()
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go r.Run(rctx)
			if err := r.WaitFor(ctx, head); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}

func appendMany(b *testing.B, store eventstore.Store, n int) {
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				if _, err := store.Append(context.Background(), fmt.Sprintf("s-%d", i%1000), eventstore.Any,
					eventstore.EventData{Type: "E", Data: json.RawMessage(`{"order_id":"o-1","amount":{"amount":1999,"currency":"USD"}}`)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
