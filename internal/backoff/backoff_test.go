package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/backoff"
)

func TestDelayGrowsJittersAndCaps(t *testing.T) {
	base, limit := 10*time.Millisecond, 75*time.Millisecond
	for attempt, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: limit, 50: limit} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := backoff.Delay(base, limit, attempt)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("attempt %d: only %d distinct delays: no jitter", attempt, len(seen))
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := backoff.Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep = %v", err)
	}
	if err := backoff.Sleep(context.Background(), time.Microsecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
