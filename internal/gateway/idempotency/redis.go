package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is a Store in Redis, shared by every gateway using the same
// Redis and prefix. A claim is SET NX with the claim's TTL; completing and
// releasing check the owner atomically in a script. A value is the
// owner, a newline and the record as JSON (a done record has no owner).
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisStore returns a store keeping records in rdb under keys starting
// with prefix.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix}
}

func encode(owner string, rec Record) (string, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("idempotency: encode record: %w", err)
	}
	return owner + "\n" + string(b), nil
}

func decode(v string) (Record, error) {
	owner, data, ok := strings.Cut(v, "\n")
	if !ok {
		return Record{}, errors.New("idempotency: malformed record in Redis")
	}
	var rec Record
	if err := json.Unmarshal([]byte(data), &rec); err != nil {
		return Record{}, fmt.Errorf("idempotency: decode record: %w", err)
	}
	rec.Owner = owner
	return rec, nil
}

// Claim implements Store.
func (s *RedisStore) Claim(ctx context.Context, key string, rec Record, ttl time.Duration) (Record, bool, error) {
	if rec.Owner == "" {
		return Record{}, false, errors.New("idempotency: a claim needs an owner")
	}
	v, err := encode(rec.Owner, rec)
	if err != nil {
		return Record{}, false, err
	}
	for range 3 { // the holder may expire between SET NX and GET
		ok, err := s.rdb.SetNX(ctx, s.prefix+key, v, ttl).Result()
		if err != nil {
			return Record{}, false, fmt.Errorf("idempotency: redis claim: %w", err)
		}
		if ok {
			return rec, true, nil
		}
		cur, found, err := s.Get(ctx, key)
		if err != nil || found {
			return cur, false, err
		}
	}
	return Record{}, false, errors.New("idempotency: redis claim: the key kept changing")
}

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, key string) (Record, bool, error) {
	v, err := s.rdb.Get(ctx, s.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("idempotency: redis get: %w", err)
	}
	rec, err := decode(v)
	return rec, err == nil, err
}

// ownerPrefix checks that the value of KEYS[1] starts with owner ARGV[1].
const ownerPrefix = `local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. "\n" then return 0 end
`

var (
	completeScript = redis.NewScript(ownerPrefix + `redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)
	releaseScript = redis.NewScript(ownerPrefix + `return redis.call('DEL', KEYS[1])`)
)

// Complete implements Store.
func (s *RedisStore) Complete(ctx context.Context, key, owner string, rec Record, ttl time.Duration) error {
	if owner == "" {
		return ErrNotOwner
	}
	rec.Owner, rec.Done = "", true
	v, err := encode("", rec)
	if err != nil {
		return err
	}
	n, err := completeScript.Run(ctx, s.rdb, []string{s.prefix + key}, owner, v, max(ttl.Milliseconds(), 1)).Int()
	if err != nil {
		return fmt.Errorf("idempotency: redis complete: %w", err)
	}
	if n == 0 {
		return ErrNotOwner
	}
	return nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, key, owner string) error {
	if owner == "" {
		return nil
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.prefix + key}, owner).Err(); err != nil {
		return fmt.Errorf("idempotency: redis release: %w", err)
	}
	return nil
}
