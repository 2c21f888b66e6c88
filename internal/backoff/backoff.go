// Package backoff holds the retry timing the building blocks share:
// exponential delays with jitter, and a sleep that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay returns the wait before retry attempt (1 for the first retry):
// base doubled per attempt, capped at limit, then jittered into
// [d/2, d] so that many retriers do not move in step.
func Delay(base, limit time.Duration, attempt int) time.Duration {
	d := min(base<<min(max(attempt-1, 0), 20), limit)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
