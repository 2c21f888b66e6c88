package ratelimit

import (
	"context"
	"fmt"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter whose buckets live in Redis, so that every gateway
// using the same Redis and prefix shares one limit per key. The GCRA runs
// in a Lua script (redis_rate) on Redis's clock, so gateways' clocks need
// not agree.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedis returns a limiter storing its buckets in rdb under keys
// starting with "rate:" + prefix.
func NewRedis(rdb redis.UniversalClient, prefix string) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(rdb), prefix: prefix}
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string, limit Limit) (Result, error) {
	if limit.IsZero() {
		return Result{Allowed: true}, nil
	}
	limit, err := limit.normalize()
	if err != nil {
		return Result{}, err
	}
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: limit.Rate, Burst: limit.Burst, Period: limit.Period})
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	return Result{
		Allowed:    res.Allowed > 0,
		Limit:      limit.Burst,
		Remaining:  res.Remaining,
		ResetAfter: max(res.ResetAfter, 0),
		RetryAfter: max(res.RetryAfter, 0),
	}, nil
}
