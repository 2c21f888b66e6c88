package ratelimit

import (
	"context"
	"sync"
	"time"
)

// MemoryOptions tunes a Memory limiter. Zero fields take the defaults.
type MemoryOptions struct {
	// SweepInterval is how often idle keys are evicted (default 1m). A
	// key is idle once its bucket has refilled: forgetting it then
	// changes no answer.
	SweepInterval time.Duration
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
}

// Memory is an in-process Limiter: GCRA (the generic cell rate
// algorithm), a token bucket that stores one time per key — the
// theoretical arrival time of the next request. It is safe for
// concurrent use.
type Memory struct {
	now   func() time.Time
	sweep time.Duration

	mu        sync.Mutex
	tat       map[string]time.Time
	lastSweep time.Time
}

// NewMemory returns an empty in-process limiter.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = time.Minute
	}
	return &Memory{now: opts.Now, sweep: opts.SweepInterval, tat: map[string]time.Time{}, lastSweep: opts.Now()}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, limit Limit) (Result, error) {
	if limit.IsZero() {
		return Result{Allowed: true}, nil
	}
	limit, err := limit.normalize()
	if err != nil {
		return Result{}, err
	}
	emission := limit.Period / time.Duration(limit.Rate)
	burstOffset := emission * time.Duration(limit.Burst)

	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) >= m.sweep {
		m.evict(now)
	}
	tat := m.tat[key]
	if tat.Before(now) {
		tat = now
	}
	newTat := tat.Add(emission)
	allowAt := newTat.Add(-burstOffset)
	diff := now.Sub(allowAt)
	res := Result{Limit: limit.Burst}
	if diff < 0 {
		res.ResetAfter = tat.Sub(now)
		res.RetryAfter = -diff
		return res, nil
	}
	m.tat[key] = newTat
	res.Allowed = true
	res.Remaining = int(diff / emission)
	res.ResetAfter = newTat.Sub(now)
	return res, nil
}

// evict forgets the keys whose buckets are full again.
func (m *Memory) evict(now time.Time) {
	for k, tat := range m.tat {
		if !tat.After(now) {
			delete(m.tat, k)
		}
	}
	m.lastSweep = now
}

// Len returns the number of keys held (for tests and metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tat)
}
