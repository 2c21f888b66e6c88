// Package idempotency makes a POST carrying an Idempotency-Key safe to
// send again: the first request with a key runs, and its answer (status,
// the headers that matter, body) is stored; a repeat with the same key and
// the same request gets that answer replayed, marked Idempotent-Replayed;
// the same key with another method, path or body is a 422. A repeat that
// arrives while the first is still running waits for its answer, up to a
// bound, then gets a 409. Keys are scoped per caller (client and tenant),
// so that callers cannot collide or read each other's answers.
//
// Answers the client should be able to retry are not stored and free the
// key again: 5xx, 408, 425, 429, 401 and 403.
//
// The Store is the contract: MemoryStore for one gateway, RedisStore for
// several.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/agora-commerce/agora/internal/gateway/edge"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/gateway/problem"
)

// Header names.
const (
	// Header is the request header carrying the key.
	Header = "Idempotency-Key"
	// ReplayedHeader is set on replayed answers.
	ReplayedHeader = "Idempotent-Replayed"
)

// Problem reasons.
const (
	// ReasonKeyReused: the key was used for a different request (422).
	ReasonKeyReused = "idempotency_key_reused"
	// ReasonInFlight: the key's first request is still running (409).
	ReasonInFlight = "idempotency_key_in_flight"
	// ReasonInvalidKey: the key is empty, too long or not printable (400).
	ReasonInvalidKey = "invalid_idempotency_key"
)

// MaxKeyLength is the longest key accepted.
const MaxKeyLength = 255

// replayed are the answer headers stored and replayed.
var replayed = []string{
	"Content-Type", "Content-Language", "Content-Location", "Location", "ETag",
	"Last-Modified", "Link", "Agora-Position", "Preference-Applied",
}

// Options configure Middleware. Store is required.
type Options struct {
	// Store keeps the records.
	Store Store
	// Scope names the caller a key belongs to; by default the client IP.
	// The gateway passes the JWT's tenant and subject.
	Scope func(*http.Request) string
	// TTL is how long an answer is kept (default 24h).
	TTL time.Duration
	// LockTTL bounds a claim of a request still running, in case its
	// process dies (default 1m). A Store that is an Extender has the
	// claim renewed while the request runs, so it can be short.
	LockTTL time.Duration
	// Wait is how long a repeat waits for a running first request
	// (default 10s; negative: it gets the 409 at once).
	Wait time.Duration
	// MaxBody bounds the request body read to fingerprint it and the
	// answer body stored (default 1 MiB); a larger answer is not stored.
	MaxBody int64
	// Logger receives store failures (default slog.Default()).
	Logger *slog.Logger
}

// ScopeByIP is the default Scope: the client IP.
func ScopeByIP(r *http.Request) string { return "ip:" + edge.ClientIP(r) }

// Middleware applies idempotency keys to POST requests; other requests
// pass through untouched.
func Middleware(opts Options) func(http.Handler) http.Handler {
	if opts.Store == nil {
		panic("idempotency: Middleware needs a Store")
	}
	if opts.Scope == nil {
		opts.Scope = ScopeByIP
	}
	if opts.TTL <= 0 {
		opts.TTL = 24 * time.Hour
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = time.Minute
	}
	if opts.Wait == 0 {
		opts.Wait = 10 * time.Second
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = edge.MaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &middleware{opts: opts}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
	}
}

type middleware struct{ opts Options }

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	key := r.Header.Get(Header)
	if r.Method != http.MethodPost || key == "" {
		next.ServeHTTP(w, r)
		return
	}
	if !validKey(key) {
		problem.Write(w, r, http.StatusBadRequest, ReasonInvalidKey,
			fmt.Sprintf("%s must be 1 to %d printable ASCII characters", Header, MaxKeyLength))
		return
	}
	body, err := edge.Body(w, r, m.opts.MaxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			problem.Write(w, r, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body exceeds %d bytes", m.opts.MaxBody))
			return
		}
		problem.Write(w, r, http.StatusBadRequest, "", "the request body could not be read")
		return
	}

	fp := fingerprint(r, body)
	sk := storeKey(m.opts.Scope(r), key)
	owner := uuid.NewString()
	ctx := r.Context()
	var waitUntil time.Time
	for {
		rec, claimed, err := m.opts.Store.Claim(ctx, sk, Record{Fingerprint: fp, Owner: owner}, m.opts.LockTTL)
		if err != nil {
			m.storeFailed(w, r, err)
			return
		}
		if claimed {
			m.run(w, r, next, sk, owner, fp)
			return
		}
		if rec.Fingerprint != fp {
			problem.Write(w, r, http.StatusUnprocessableEntity, ReasonKeyReused,
				fmt.Sprintf("this %s was used for a different request", Header))
			return
		}
		if rec.Done {
			replay(w, rec)
			return
		}
		// The first request is still running: wait for its answer.
		if waitUntil.IsZero() {
			waitUntil = time.Now().Add(max(m.opts.Wait, 0))
		}
		rec, found, err := m.await(ctx, sk, waitUntil)
		switch {
		case err != nil && ctx.Err() != nil:
			return // the client went away
		case err != nil:
			m.storeFailed(w, r, err)
			return
		case found && rec.Done && rec.Fingerprint == fp:
			replay(w, rec)
			return
		case found && !rec.Done:
			w.Header().Set("Retry-After", "1")
			problem.Write(w, r, http.StatusConflict, ReasonInFlight,
				fmt.Sprintf("a request with this %s is still being processed; retry shortly", Header))
			return
		}
		// Released (the first request failed) or replaced: claim again.
	}
}

// await polls key until its record is done or gone, or until deadline.
func (m *middleware) await(ctx context.Context, key string, deadline time.Time) (Record, bool, error) {
	delay := 5 * time.Millisecond
	for {
		rec, found, err := m.opts.Store.Get(ctx, key)
		if err != nil || !found || rec.Done {
			return rec, found, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return rec, true, nil
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return rec, true, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// run serves the claimed request and stores its answer, or releases the
// key when the answer is not worth keeping.
func (m *middleware) run(w http.ResponseWriter, r *http.Request, next http.Handler, key, owner, fp string) {
	// The store is written even if the client has gone away.
	ctx := context.WithoutCancel(r.Context())
	rw := &recorder{ResponseWriter: w, max: m.opts.MaxBody}
	defer func() {
		if p := recover(); p != nil {
			m.release(ctx, key, owner)
			panic(p)
		}
	}()
	if ext, ok := m.opts.Store.(Extender); ok {
		stop := m.renew(ctx, ext, key, owner)
		defer stop()
	}
	next.ServeHTTP(rw, r)
	if !rw.wroteHeader {
		rw.status = http.StatusOK
	}
	if rw.overflow || !storable(rw.status) {
		m.release(ctx, key, owner)
		return
	}
	h := http.Header{}
	for _, name := range replayed {
		if v := rw.header[name]; len(v) > 0 {
			h[name] = v
		}
	}
	rec := Record{Fingerprint: fp, Status: rw.status, Header: h, Body: rw.body.Bytes()}
	if err := m.opts.Store.Complete(ctx, key, owner, rec, m.opts.TTL); err != nil {
		m.opts.Logger.WarnContext(r.Context(), "gateway: idempotency: answer not stored", "err", err)
	}
}

// renew renews the claim of key every third of LockTTL until stop.
func (m *middleware) renew(ctx context.Context, ext Extender, key, owner string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(m.opts.LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := ext.Extend(ctx, key, owner, m.opts.LockTTL); err != nil && ctx.Err() == nil {
					m.opts.Logger.WarnContext(ctx, "idempotency: claim not renewed", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (m *middleware) release(ctx context.Context, key, owner string) {
	if err := m.opts.Store.Release(ctx, key, owner); err != nil {
		m.opts.Logger.WarnContext(ctx, "gateway: idempotency: key not released", "err", err)
	}
}

func (m *middleware) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	m.opts.Logger.ErrorContext(r.Context(), "gateway: idempotency store failed", "err", err)
	w.Header().Set("Retry-After", "1")
	problem.Write(w, r, http.StatusServiceUnavailable, "idempotency_unavailable",
		"idempotency keys cannot be checked right now; retry shortly")
}

func replay(w http.ResponseWriter, rec Record) {
	for name, v := range rec.Header {
		w.Header()[name] = v
	}
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(rec.Status)
	_, _ = w.Write(rec.Body)
}

// storable reports whether an answer is final for its request.
func storable(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return status < 500
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// fingerprint hashes what makes two requests the same: method, target
// and body.
func fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", r.Method, r.URL.RequestURI())
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// storeKey hashes scope and key into a fixed-size store key.
func storeKey(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// recorder passes an answer through while keeping a copy.
type recorder struct {
	http.ResponseWriter
	max         int64
	status      int
	wroteHeader bool
	header      http.Header
	body        bytes.Buffer
	overflow    bool
}

func (rw *recorder) WriteHeader(code int) {
	if !rw.wroteHeader && code >= 200 {
		rw.status, rw.wroteHeader = code, true
		rw.header = rw.ResponseWriter.Header().Clone()
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.overflow {
		if int64(rw.body.Len()+len(b)) > rw.max {
			rw.overflow = true
			rw.body.Reset()
		} else {
			rw.body.Write(b)
		}
	}
	return rw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// Flush implements http.Flusher when the underlying writer does.
func (rw *recorder) Flush() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}
