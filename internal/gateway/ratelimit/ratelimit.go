// Package ratelimit limits request rates per client and per tenant.
//
// Limiter is the contract; Memory is an in-process GCRA token bucket (one
// gateway) and Redis shares limits between gateways through
// go-redis/redis_rate, which runs the same GCRA inside Redis. Both answer
// the same Result for the same history. Middleware applies a route's
// limits and speaks the RateLimit-* and Retry-After headers.
package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Limit allows Rate requests per Period with bursts of up to Burst (the
// bucket's size). The zero Limit means no limit.
type Limit struct {
	// Rate is the number of requests per Period.
	Rate int
	// Period is the window Rate is counted over.
	Period time.Duration
	// Burst is the bucket size; 0 means Rate.
	Burst int
}

// IsZero reports whether l is no limit.
func (l Limit) IsZero() bool { return l == Limit{} }

// normalize fills Burst and rejects unusable limits.
func (l Limit) normalize() (Limit, error) {
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	if l.Rate <= 0 || l.Period <= 0 || l.Burst < 0 || l.Period/time.Duration(l.Rate) <= 0 {
		return l, fmt.Errorf("ratelimit: unusable limit %d per %v (burst %d)", l.Rate, l.Period, l.Burst)
	}
	return l, nil
}

// Result is the outcome of one Allow.
type Result struct {
	// Allowed says whether the request may proceed.
	Allowed bool
	// Limit is the bucket size (the most requests allowed at once).
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// ResetAfter is the time until the bucket is full again.
	ResetAfter time.Duration
	// RetryAfter is the time until a denied request would be allowed; 0
	// when Allowed.
	RetryAfter time.Duration
}

// Limiter decides whether the request identified by key is within limit.
// A Limiter must be safe for concurrent use.
type Limiter interface {
	// Allow consumes one request from key's bucket if limit allows it.
	// The zero limit always allows.
	Allow(ctx context.Context, key string, limit Limit) (Result, error)
}
