package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/platform/call"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// A partitioned context's instances split its partitions between them
// (distributed mode, on PostgreSQL): each partition is a lease, a
// session advisory lock of the database, and only the instance that
// holds it runs the partition's projections and relay. (The partition's
// saga engine runs on every instance: each drives the sagas it starts,
// and the engines' sweeps take over those of an instance that died.)
// Every leaseEvery each instance:
//
//   - drops a lease whose session is gone (the database ended it, or the
//     network did), stopping that partition's work;
//   - computes its share, ceil(partitions / instances registered), and
//     releases its highest partition when it holds more than its share
//     (a new instance joined);
//   - takes free partitions while it holds fewer than its share, and
//     takes any partition that has stayed free for freeAfter whatever its
//     share (an instance killed before the registry forgot it).
//
// An instance that dies loses its sessions, so its partitions are free
// at once and taken within freeAfter plus a tick. Commands may still
// reach any instance: appends are optimistic and the commands
// idempotent, so the lease decides who does the background work, not
// who may write. Each held lease's session names itself in
// pg_stat_activity.application_name ("agora-lease <schema> <pid>").
const (
	leaseEvery = 500 * time.Millisecond
	freeAfter  = 2 * time.Second
)

// leases runs the leases of partitioned context c's partitions.
type leases struct {
	c        *contextStore
	cluster  string
	instance string
	reg      registry.Registry
	// kv, if set, is where a held partition is registered as a cluster
	// of its own (its log's name, "payments-p2"), so that other instances
	// send its commands here; url is this instance's.
	kv  *registry.KV
	url string
	// owned has bit k set while partition k's lease is held here.
	owned atomic.Uint64
	log   *slog.Logger
	// work runs partition part's work until its context ends.
	work func(ctx context.Context, part *contextStore)
}

// lease is a held partition: its session, and its work's cancel.
type lease struct {
	conn       *sql.Conn
	cancel     context.CancelFunc
	done       chan struct{}
	deregister func()
}

// stop ends a lease's work and its registration (the session is the
// caller's to unlock or close).
func (l *leases) stop(k int, h *lease) {
	l.owned.And(^(uint64(1) << k))
	if h.deregister != nil {
		h.deregister()
	}
	h.cancel()
	<-h.done
}

// Owns reports whether partition k's lease is held here.
func (l *leases) Owns(k int) bool { return l.owned.Load()&(uint64(1)<<k) != 0 }

func leaseKey(schema, log string) int64 {
	h := fnv.New64a()
	h.Write([]byte("agora/partition/" + schema + "/" + log))
	return int64(h.Sum64())
}

// Run keeps the leases until ctx ends, then releases them.
func (l *leases) Run(ctx context.Context) error {
	held := map[int]*lease{}
	freeSince := map[int]time.Time{}
	release := func(k int) {
		h := held[k]
		l.stop(k, h)
		unlock, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_, _ = h.conn.ExecContext(unlock, `SELECT pg_advisory_unlock($1)`, leaseKey(l.c.schema, l.c.parts[k].name))
		done()
		_ = h.conn.Close()
		delete(held, k)
	}
	defer func() {
		for k := range held {
			release(k)
		}
	}()
	t := time.NewTicker(leaseEvery)
	defer t.Stop()
	for {
		l.tick(ctx, held, freeSince, release)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (l *leases) tick(ctx context.Context, held map[int]*lease, freeSince map[int]time.Time, release func(int)) {
	n := len(l.c.parts)
	for k, h := range held {
		if err := h.conn.PingContext(ctx); err != nil {
			if ctx.Err() == nil {
				l.log.Warn("partition: lost the lease", "partition", l.c.parts[k].name, "err", err)
			}
			l.stop(k, h)
			_ = h.conn.Close()
			delete(held, k)
		}
	}
	instances := max(1, len(l.reg.Instances(l.cluster)))
	share := (n + instances - 1) / instances
	if len(held) > share {
		k := slices.Max(slices.Collect(maps.Keys(held)))
		release(k)
		l.log.Info("partition: released to balance", "partition", l.c.parts[k].name, "share", share, "instances", instances)
	}
	now := time.Now()
	// Start at a partition of the instance's own (by its name's hash), so
	// that instances starting together try different ones first.
	h := fnv.New32a()
	h.Write([]byte(l.instance))
	first := int(h.Sum32() % uint32(n))
	for i := range n {
		k := (first + i) % n
		if held[k] != nil {
			continue
		}
		stale := !freeSince[k].IsZero() && now.Sub(freeSince[k]) >= freeAfter
		if len(held) >= share && !stale {
			// Not ours to take unless it stays free: remember since when
			// it has been free.
			if free, err := l.free(ctx, k); err == nil && free {
				if freeSince[k].IsZero() {
					freeSince[k] = now
				}
			} else {
				delete(freeSince, k)
			}
			continue
		}
		got, err := l.take(ctx, k, held)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("partition: take", "partition", l.c.parts[k].name, "err", err)
			}
			continue
		}
		if got {
			delete(freeSince, k)
			l.log.Info("partition: took the lease", "partition", l.c.parts[k].name, "share", share, "instances", instances, "held", len(held))
		}
	}
}

// free reports whether no session holds partition k's lease.
func (l *leases) free(ctx context.Context, k int) (bool, error) {
	// A bigint advisory key shows in pg_locks as its high and low halves.
	key := uint64(leaseKey(l.c.schema, l.c.parts[k].name))
	var n int
	err := l.c.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $1::bigint::oid AND objid = $2::bigint::oid`, int64(key>>32), int64(key&0xffffffff)).Scan(&n)
	return n == 0, err
}

// take tries partition k's lease, and on success starts its work.
func (l *leases) take(ctx context.Context, k int, held map[int]*lease) (bool, error) {
	part := l.c.parts[k]
	conn, err := l.c.db.Conn(ctx)
	if err != nil {
		return false, err
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, leaseKey(l.c.schema, part.name)).Scan(&got); err != nil || !got {
		conn.Close()
		return false, err
	}
	// application_name holds 63 bytes: the partition's schema and the pid.
	if _, err := conn.ExecContext(ctx, `SELECT set_config('application_name', $1, false)`,
		fmt.Sprintf("agora-lease %s %d", part.schema, os.Getpid())); err != nil {
		conn.Close()
		return false, err
	}
	wctx, cancel := context.WithCancel(ctx)
	h := &lease{conn: conn, cancel: cancel, done: make(chan struct{})}
	if l.kv != nil {
		stop, err := l.kv.Register(ctx, part.name, registry.Instance{ID: l.instance, URL: l.url, Weight: 1})
		if err != nil {
			l.log.Warn("partition: register the lease", "partition", part.name, "err", err)
		} else {
			h.deregister = stop
		}
	}
	go func() {
		defer close(h.done)
		l.work(wctx, part)
	}()
	held[k] = h
	l.owned.Or(uint64(1) << k)
	return true, nil
}

// runAll runs fs until ctx ends, each logged if it stops on an error.
func runAll(ctx context.Context, log *slog.Logger, what string, fs ...func(context.Context) error) {
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() {
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				log.Error("stopped", "what", what, "err", err)
			}
		})
	}
	wg.Wait()
}

// ForwardedHeader marks a request one payments instance forwarded to the
// instance that holds its partition's lease (and the answer, naming that
// instance): a forwarded request is served where it lands.
const ForwardedHeader = "Agora-Forwarded-To"

// toOwner sends a request about one account or transfer to the instance
// that holds its partition's lease (as the partition's cluster in the
// registry says), and serves it with h when that is this instance, when
// no instance holds it, or when the owner cannot be reached (a write is
// safe anywhere: appends are optimistic).
func (s *Server) toOwner(l *leases, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := partitionKey(r)
		if key == "" || r.Header.Get(ForwardedHeader) != "" {
			h.ServeHTTP(w, r)
			return
		}
		k := partition.Of(key, len(l.c.parts))
		if l.Owns(k) {
			h.ServeHTTP(w, r)
			return
		}
		owners := s.reg.Instances(partition.Log(k))
		if len(owners) == 0 || owners[0].ID == l.instance {
			h.ServeHTTP(w, r)
			return
		}
		owner := owners[0]
		target, err := url.Parse(owner.URL)
		if err != nil {
			h.ServeHTTP(w, r)
			return
		}
		if r.ContentLength < 0 || r.ContentLength > 1<<20 {
			h.ServeHTTP(w, r) // a body of unknown or large size: served here
			return
		}
		// The body, kept to serve here if the owner cannot be reached.
		var body []byte
		if r.Body != nil {
			if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20)); err != nil {
				httpapi.Error(w, r, errs.E(errs.Invalid, "request body: %v", err))
				return
			}
		}
		local := func() {
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.ServeHTTP(w, r)
		}
		p := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Header.Set(ForwardedHeader, owner.ID)
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out.ContentLength = int64(len(body))
			},
			Transport: s.forwardTransport(),
			ModifyResponse: func(res *http.Response) error {
				res.Header.Set(ForwardedHeader, owner.ID)
				s.metrics.PartitionForwarded("http")
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				s.log.Debug("partition: the owner is unreachable: serving here", "owner", owner.URL, "err", err)
				local()
			},
		}
		p.ServeHTTP(w, r)
	})
}

// forwardTransport carries forwarded requests (the platform's client's,
// which trusts its CA bundle).
func (s *Server) forwardTransport() http.RoundTripper {
	if s.client != nil && s.client.Transport != nil {
		return s.client.Transport
	}
	return http.DefaultTransport
}

// partitionKey is the account or transfer a request is about: the ID
// in /api/v1/accounts/{id}… or /api/v1/transfers/{id} ("" for others).
func partitionKey(r *http.Request) string {
	for _, prefix := range []string{"/api/v1/accounts/", "/api/v1/transfers/"} {
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id
		}
	}
	return ""
}

// partitionSubject is the subject of call subject about partition log,
// answered only by the instance that holds its lease.
func partitionSubject(subject, log string) string { return subject + "." + log }

// routeCall answers call a where the call's partition is: here when
// this instance holds its lease, or when the call is about no one
// partition (keyOf answers ""); else it passes the call on to the
// holder, and answers it here when no holder answers (none holds it
// yet, or it died: the commands are idempotent and appends optimistic).
func (s *Server) routeCall(l *leases, a call.Answer, keyOf func(string, json.RawMessage) string) func(context.Context, []byte) []byte {
	return func(ctx context.Context, data []byte) []byte {
		if keyOf == nil {
			return a.Respond(ctx, data)
		}
		var env struct {
			Request json.RawMessage `json:"request"`
		}
		if json.Unmarshal(data, &env) != nil {
			return a.Respond(ctx, data)
		}
		key := keyOf(a.Subject, env.Request)
		if key == "" {
			return a.Respond(ctx, data)
		}
		k := partition.Of(key, len(l.c.parts))
		if l.Owns(k) {
			return a.Respond(ctx, data)
		}
		out, err := s.bus.Request(ctx, partitionSubject(a.Subject, l.c.parts[k].name), data)
		if err != nil {
			s.log.Debug("partition: no holder answered: answering here", "subject", a.Subject, "partition", l.c.parts[k].name, "err", err)
			return a.Respond(ctx, data)
		}
		s.metrics.PartitionForwarded("call")
		return out
	}
}
