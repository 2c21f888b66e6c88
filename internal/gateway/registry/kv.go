package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KV is a Registry on a NATS JetStream key-value bucket, for distributed
// mode: each instance puts itself under "<cluster>.<id>" and puts itself
// again every TTL/3 (its heartbeat); the bucket forgets a key TTL after
// its last put, and KV's view does too, so an instance that dies without
// deregistering drops out within TTL. Every gateway watches the bucket
// and answers Instances from memory.
type KV struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	log *slog.Logger

	mu    sync.RWMutex
	seen  map[string]map[string]entry // cluster → instance ID → entry
	views map[string]view             // cluster → what Instances answers
}

// view is a cluster's live instances, sorted, as Instances answers them
// until the bucket changes or the first of them expires.
type view struct {
	instances []Instance
	until     time.Time
}

type entry struct {
	in Instance
	at time.Time // the last put
}

// OpenKV opens (creating if needed) bucket on js with ttl, and follows it
// until ctx ends.
func OpenKV(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, log *slog.Logger) (*KV, error) {
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: ttl, History: 1,
		Description: "Agora service registry: <cluster>.<instance> → instance, kept alive by heartbeats"})
	if err != nil {
		return nil, fmt.Errorf("registry: bucket %s: %w", bucket, err)
	}
	r := &KV{kv: kv, ttl: ttl, log: log, seen: map[string]map[string]entry{}, views: map[string]view{}}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: watch %s: %w", bucket, err)
	}
	ready := make(chan struct{})
	go r.follow(ctx, w, ready)
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return r, nil
}

// follow applies the bucket's updates; ready is closed once the initial
// values are in.
func (r *KV) follow(ctx context.Context, w jetstream.KeyWatcher, ready chan struct{}) {
	defer func() { _ = w.Stop() }()
	once := sync.OnceFunc(func() { close(ready) })
	defer once()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // the initial values are all in
				once()
				continue
			}
			cluster, id, ok := strings.Cut(e.Key(), ".")
			if !ok {
				continue
			}
			r.mu.Lock()
			delete(r.views, cluster)
			if e.Operation() != jetstream.KeyValuePut {
				delete(r.seen[cluster], id)
			} else {
				var in Instance
				if err := json.Unmarshal(e.Value(), &in); err == nil && in.ID == id {
					if r.seen[cluster] == nil {
						r.seen[cluster] = map[string]entry{}
					}
					r.seen[cluster][id] = entry{in: in, at: e.Created()}
				}
			}
			r.mu.Unlock()
		}
	}
}

// Instances implements Registry: the instances heard from within TTL,
// ordered by ID. The answer is kept until the bucket changes or the
// first of its instances expires, so a request costs a map lookup.
func (r *KV) Instances(cluster string) []Instance {
	now := time.Now()
	r.mu.RLock()
	v, ok := r.views[cluster]
	r.mu.RUnlock()
	if ok && now.Before(v.until) {
		return v.instances
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v = view{until: now.Add(r.ttl)}
	for _, e := range r.seen[cluster] {
		if expires := e.at.Add(r.ttl); now.Before(expires) {
			v.instances = append(v.instances, e.in)
			if expires.Before(v.until) {
				v.until = expires
			}
		}
	}
	slices.SortFunc(v.instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	r.views[cluster] = v
	return v.instances
}

// Register puts in under cluster and keeps it there with heartbeats until
// ctx ends or the returned stop is called; stop deregisters it at once.
func (r *KV) Register(ctx context.Context, cluster string, in Instance) (stop func(), err error) {
	if err := validate(cluster, in); err != nil {
		return nil, err
	}
	if strings.ContainsAny(cluster+in.ID, ".*> ") {
		return nil, fmt.Errorf("%w: cluster %q or instance %q contains a character a NATS key cannot", ErrInvalid, cluster, in.ID)
	}
	key := cluster + "." + in.ID
	val, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if _, err := r.kv.Put(ctx, key, val); err != nil {
		return nil, fmt.Errorf("registry: register %s: %w", key, err)
	}
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				if _, err := r.kv.Put(hctx, key, val); err != nil && hctx.Err() == nil {
					r.log.Warn("registry: heartbeat failed", "key", key, "err", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		dctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		if err := r.kv.Delete(dctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			r.log.Warn("registry: deregister failed; the key expires on its own", "key", key, "err", err)
		}
	}, nil
}
