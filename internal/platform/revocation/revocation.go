// Package revocation is the list of access tokens revoked before they
// expire (logged out), shared by every gateway and service: a NATS
// JetStream key-value bucket that identity writes and every process
// follows into memory, so that checking a token costs a map lookup. An
// entry lives until the token it names expires; the bucket's TTL, the
// longest lifetime a verifier accepts, sweeps it after that.
package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// List is a followed revocation bucket. It implements auth.Revocations.
type List struct {
	kv  jetstream.KeyValue
	log *slog.Logger

	mu      sync.RWMutex
	revoked map[string]time.Time // token ID → when it expires
}

// Open opens (creating if needed) bucket on js, keeping entries for ttl,
// and follows it until ctx ends. It returns once the entries already
// there are loaded.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, log *slog.Logger) (*List, error) {
	if log == nil {
		log = slog.Default()
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: ttl, History: 1,
		Description: "Agora revoked access tokens: <jti> → its expiry (Unix seconds)"})
	if err != nil {
		return nil, fmt.Errorf("revocation: bucket %s: %w", bucket, err)
	}
	l := &List{kv: kv, log: log, revoked: map[string]time.Time{}}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("revocation: watch %s: %w", bucket, err)
	}
	ready := make(chan struct{})
	go l.follow(ctx, w, ready)
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l, nil
}

func (l *List) follow(ctx context.Context, w jetstream.KeyWatcher, ready chan struct{}) {
	defer func() { _ = w.Stop() }()
	once := sync.OnceFunc(func() { close(ready) })
	defer once()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-sweep.C:
			l.mu.Lock()
			for id, until := range l.revoked {
				if now.After(until) {
					delete(l.revoked, id)
				}
			}
			l.mu.Unlock()
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // the initial values are all in
				once()
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue
			}
			sec, err := strconv.ParseInt(string(e.Value()), 10, 64)
			if err != nil {
				l.log.Warn("revocation: malformed entry", "key", e.Key())
				continue
			}
			l.add(e.Key(), time.Unix(sec, 0))
		}
	}
}

func (l *List) add(id string, until time.Time) {
	l.mu.Lock()
	l.revoked[id] = until
	l.mu.Unlock()
}

// Revoked reports whether token id was revoked (and has not expired).
func (l *List) Revoked(id string) bool {
	if id == "" {
		return false
	}
	l.mu.RLock()
	until, ok := l.revoked[id]
	l.mu.RUnlock()
	return ok && time.Now().Before(until.Add(time.Minute))
}

// Revoke revokes token id, which expires at until, for every process
// following the bucket; this one refuses it at once, the others as soon
// as the update reaches them (milliseconds). A token ID is a UUID; other
// IDs are refused.
func (l *List) Revoke(ctx context.Context, id string, until time.Time) error {
	if !validKey(id) {
		return errors.New("revocation: a token ID is letters, digits and dashes")
	}
	if _, err := l.kv.Put(ctx, id, []byte(strconv.FormatInt(until.Unix(), 10))); err != nil {
		return fmt.Errorf("revocation: revoke: %w", err)
	}
	l.add(id, until)
	return nil
}

// validKey reports whether id can be a bucket key.
func validKey(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
