package idempotency

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Record is what a Store keeps under an idempotency key: while the first
// request runs, its fingerprint and owner; once it has answered, the
// answer.
type Record struct {
	// Fingerprint identifies the request: method, path and body hash.
	Fingerprint string `json:"fingerprint"`
	// Owner identifies the in-flight claim; empty once Done.
	Owner string `json:"-"`
	// Done is set once the answer is stored.
	Done bool `json:"done,omitempty"`
	// Status is the answer's status code.
	Status int `json:"status,omitempty"`
	// Header holds the answer's headers worth replaying.
	Header http.Header `json:"header,omitempty"`
	// Body is the answer's body.
	Body []byte `json:"body,omitempty"`
}

// ErrNotOwner is returned by Complete when the claim was lost (it expired
// and another request took the key).
var ErrNotOwner = errors.New("idempotency: the key's claim is no longer held")

// Store keeps Records by key with a time to live. Implementations must be
// safe for concurrent use, and Claim atomic across every gateway sharing
// the store.
type Store interface {
	// Claim stores rec (an in-flight claim, rec.Owner set) under key for
	// ttl unless key holds a record; then it returns that record and false.
	Claim(ctx context.Context, key string, rec Record, ttl time.Duration) (Record, bool, error)
	// Get returns key's record, if any.
	Get(ctx context.Context, key string) (Record, bool, error)
	// Complete replaces the claim of owner under key by the done rec, kept
	// for ttl. It returns ErrNotOwner if owner no longer holds key.
	Complete(ctx context.Context, key, owner string, rec Record, ttl time.Duration) error
	// Release deletes key if owner still holds its claim, so that the
	// request can be tried again.
	Release(ctx context.Context, key, owner string) error
}

// Extender is a Store whose claims can be renewed: the middleware renews
// a running request's claim every third of its LockTTL, so that a short
// LockTTL frees the key of a request whose process died soon, without
// freeing the key of a slow one that is still running.
type Extender interface {
	// Extend renews owner's claim of key for ttl; ErrNotOwner if owner no
	// longer holds it.
	Extend(ctx context.Context, key, owner string, ttl time.Duration) error
}

// MemoryStore is an in-process Store with expiry. It is safe for
// concurrent use.
type MemoryStore struct {
	now func() time.Time

	mu        sync.Mutex
	m         map[string]memEntry
	lastSweep time.Time
}

type memEntry struct {
	rec     Record
	expires time.Time
}

// NewMemoryStore returns an empty store; now is its clock (nil:
// time.Now). Expired records are swept once a minute.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{now: now, m: map[string]memEntry{}, lastSweep: now()}
}

func (s *MemoryStore) get(key string, now time.Time) (Record, bool) {
	if now.Sub(s.lastSweep) >= time.Minute {
		for k, e := range s.m {
			if !e.expires.After(now) {
				delete(s.m, k)
			}
		}
		s.lastSweep = now
	}
	e, ok := s.m[key]
	if !ok || !e.expires.After(now) {
		delete(s.m, key)
		return Record{}, false
	}
	return e.rec, true
}

// Claim implements Store.
func (s *MemoryStore) Claim(_ context.Context, key string, rec Record, ttl time.Duration) (Record, bool, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.get(key, now); ok {
		return cur, false, nil
	}
	s.m[key] = memEntry{rec: rec, expires: now.Add(ttl)}
	return rec, true, nil
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, key string) (Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.get(key, s.now())
	return rec, ok, nil
}

// Complete implements Store.
func (s *MemoryStore) Complete(_ context.Context, key, owner string, rec Record, ttl time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.get(key, now); !ok || cur.Owner != owner || cur.Done {
		return ErrNotOwner
	}
	rec.Owner, rec.Done = "", true
	s.m[key] = memEntry{rec: rec, expires: now.Add(ttl)}
	return nil
}

// Release implements Store.
func (s *MemoryStore) Release(_ context.Context, key, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.get(key, s.now()); ok && cur.Owner == owner && !cur.Done {
		delete(s.m, key)
	}
	return nil
}

// Len returns the number of unexpired records (for tests and metrics).
func (s *MemoryStore) Len() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.m {
		if e.expires.After(now) {
			n++
		}
	}
	return n
}
