package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURL returns AGORA_TEST_REDIS_URL or skips t.
func RedisURL(t testing.TB) string {
	url := os.Getenv("AGORA_TEST_REDIS_URL")
	if url == "" {
		t.Skip("AGORA_TEST_REDIS_URL not set; skipping Redis tests (.ci/run sets it)")
	}
	return url
}

// RedisClient returns a new client of the test Redis, closed when t ends.
// Several clients of one test stand for several processes.
func RedisClient(t testing.TB) *redis.Client {
	opts, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatalf("AGORA_TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at AGORA_TEST_REDIS_URL is not reachable: %v", err)
	}
	return rdb
}

// RedisPrefix returns a key prefix unique to this run of t, so that tests
// can run again and in parallel against one Redis; keys under it are
// deleted when t ends.
func RedisPrefix(t testing.TB, rdb *redis.Client) string {
	prefix := fmt.Sprintf("agora-test:%s:%016x:", t.Name(), rand.Uint64())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, pattern := range []string{prefix + "*", "*:" + prefix + "*"} {
			iter := rdb.Scan(ctx, 0, pattern, 100).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
	})
	return prefix
}
