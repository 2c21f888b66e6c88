package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/eventstore/sqlite"
)

// BenchmarkAppend64 measures 64 concurrent one-event appends, with group
// commit and without (one transaction per append).
func BenchmarkAppend64(b *testing.B) {
	for _, mode := range []struct {
		name     string
		maxBatch int
	}{{"batched", 0}, {"naive", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "es.db"), sqlite.Options{MaxBatch: mode.maxBatch})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := json.RawMessage(`{"amount":{"amount":1999,"currency":"USD"}}`)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < 64; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; next.Add(1) <= int64(b.N); i++ {
						if _, err := s.Append(context.Background(), fmt.Sprintf("b-%d-%d", w, i%16), eventstore.Any, eventstore.EventData{Type: "T", Data: data}); err != nil {
							b.Error(err)
							return
						}
					}
				}(w)
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
