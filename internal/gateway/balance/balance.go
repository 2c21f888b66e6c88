// Package balance chooses the instance of an upstream cluster that serves
// each request: smooth weighted round-robin over the healthy instances, a
// fixed share of requests to the canary subset, and outlier ejection.
//
// An instance that answers ConsecutiveFailures times in a row with a 5xx
// or a transport error is ejected for BaseEjection; each further ejection
// doubles the period, up to MaxEjection, and the count decays again while
// the instance stays healthy. Ejected instances return on their own when
// their period ends. When every instance is ejected the balancer ignores
// ejection (panic routing) rather than fail every request.
package balance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/registry"
)

// ErrNoInstances is returned (wrapped) when a cluster has no instances.
var ErrNoInstances = errors.New("balance: no instances")

// Config tunes a Balancer. Zero fields take the defaults shown.
type Config struct {
	// CanaryPercent is the share of requests, 0 to 100, sent to canary
	// instances while both subsets have healthy instances. 0 sends canaries
	// traffic only when no stable instance is healthy.
	CanaryPercent float64
	// ConsecutiveFailures ejects an instance after that many 5xx answers
	// or transport errors in a row (default 5).
	ConsecutiveFailures int
	// BaseEjection is the first ejection's length (default 30s).
	BaseEjection time.Duration
	// MaxEjection caps the doubled ejection length (default 5m).
	MaxEjection time.Duration
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
	// Logger receives ejections and returns (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	c.CanaryPercent = min(max(c.CanaryPercent, 0), 100)
	if c.ConsecutiveFailures <= 0 {
		c.ConsecutiveFailures = 5
	}
	if c.BaseEjection <= 0 {
		c.BaseEjection = 30 * time.Second
	}
	if c.MaxEjection < c.BaseEjection {
		c.MaxEjection = max(5*time.Minute, c.BaseEjection)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Balancer picks instances of one cluster. It is safe for concurrent use.
type Balancer struct {
	reg     registry.Registry
	cluster string
	cfg     Config

	mu     sync.Mutex
	credit float64 // canary share accumulator, in percent
	hosts  map[string]*host
}

// host is the balancer's state of one instance.
type host struct {
	current      int       // smooth weighted round-robin
	failures     int       // consecutive
	ejections    int       // how often ejected, decaying
	ejectedUntil time.Time // zero when never ejected
	calmSince    time.Time // start of the current healthy stretch
}

// New returns a Balancer over cluster's instances in reg.
func New(reg registry.Registry, cluster string, cfg Config) *Balancer {
	cfg.defaults()
	return &Balancer{reg: reg, cluster: cluster, cfg: cfg, hosts: map[string]*host{}}
}

// Cluster returns the name of the balanced cluster.
func (b *Balancer) Cluster() string { return b.cluster }

// Pick returns the instance to send the next request to.
func (b *Balancer) Pick() (registry.Instance, error) {
	all := b.reg.Instances(b.cluster)
	if len(all) == 0 {
		return registry.Instance{}, fmt.Errorf("%w in cluster %q", ErrNoInstances, b.cluster)
	}
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune(all)
	stable, canary := b.partition(all, now, true)
	if len(stable) == 0 && len(canary) == 0 {
		stable, canary = b.partition(all, now, false) // panic routing
	}
	subset := stable
	switch {
	case len(stable) == 0:
		subset = canary
	case len(canary) > 0:
		b.credit += b.cfg.CanaryPercent
		if b.credit >= 100 {
			b.credit -= 100
			subset = canary
		}
	}
	return b.weighted(subset), nil
}

// partition splits instances into stable and canary, leaving out ejected
// ones when healthyOnly.
func (b *Balancer) partition(all []registry.Instance, now time.Time, healthyOnly bool) (stable, canary []registry.Instance) {
	plain := true // no canary, none left out: all of them, as they are
	for _, in := range all {
		if in.Canary || healthyOnly && b.host(in.ID).ejectedUntil.After(now) {
			plain = false
			break
		}
	}
	if plain {
		return all, nil
	}
	for _, in := range all {
		if healthyOnly && b.host(in.ID).ejectedUntil.After(now) {
			continue
		}
		if in.Canary {
			canary = append(canary, in)
		} else {
			stable = append(stable, in)
		}
	}
	return stable, canary
}

// weighted is nginx's smooth weighted round-robin: every candidate gains
// its weight, the richest is chosen and pays the total. Equal weights
// give plain round-robin in registry order.
func (b *Balancer) weighted(cands []registry.Instance) registry.Instance {
	var best *host
	bi, total := 0, 0
	for i, in := range cands {
		w := max(in.Weight, 1)
		h := b.host(in.ID)
		h.current += w
		total += w
		if best == nil || h.current > best.current {
			best, bi = h, i
		}
	}
	best.current -= total
	return cands[bi]
}

func (b *Balancer) host(id string) *host {
	h, ok := b.hosts[id]
	if !ok {
		h = &host{}
		b.hosts[id] = h
	}
	return h
}

// prune forgets instances that left the registry.
func (b *Balancer) prune(all []registry.Instance) {
	if len(b.hosts) <= len(all) {
		return
	}
	keep := make(map[string]bool, len(all))
	for _, in := range all {
		keep[in.ID] = true
	}
	for id := range b.hosts {
		if !keep[id] {
			delete(b.hosts, id)
		}
	}
}

// Report records the outcome of a request to instance id: ok is false for
// a 5xx answer or a transport error.
func (b *Balancer) Report(id string, ok bool) {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.host(id)
	if h.ejectedUntil.After(now) {
		return // answers of requests sent before the ejection
	}
	if ok {
		h.failures = 0
		if h.ejections > 0 && !now.Before(h.calmSince.Add(b.cfg.BaseEjection)) {
			h.ejections--
			h.calmSince = now
		}
		return
	}
	h.failures++
	if h.failures < b.cfg.ConsecutiveFailures {
		return
	}
	h.failures = 0
	h.ejections++
	d := b.cfg.BaseEjection << min(h.ejections-1, 20)
	if d <= 0 || d > b.cfg.MaxEjection {
		d = b.cfg.MaxEjection
	}
	h.ejectedUntil = now.Add(d)
	h.calmSince = h.ejectedUntil
	b.cfg.Logger.Warn("gateway: instance ejected", "cluster", b.cluster, "instance", id, "for", d, "ejections", h.ejections)
}

// Ejected returns the IDs of the instances ejected now, sorted.
func (b *Balancer) Ejected() []string {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for id, h := range b.hosts {
		if h.ejectedUntil.After(now) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// EjectedUntil returns the instances ejected now, each with the end of
// its ejection (for operators: which instance is out, and until when).
func (b *Balancer) EjectedUntil() map[string]time.Time {
	now := b.cfg.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]time.Time{}
	for id, h := range b.hosts {
		if h.ejectedUntil.After(now) {
			out[id] = h.ejectedUntil
		}
	}
	return out
}

// Transport returns a RoundTripper that sends each request to the
// instance Pick chooses (its URL's scheme, host and path prefix replace
// the request's) through next, and reports the outcome: a 5xx answer or
// a transport error counts against the instance. A canceled request
// (the client went away, or a timeout policy ended the attempt) counts
// neither way: the balancer cannot tell the two apart, so slow instances
// are left to the circuit breaker and timeouts. A nil next means
// http.DefaultTransport.
func (b *Balancer) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{b: b, next: next}
}

type transport struct {
	b    *Balancer
	next http.RoundTripper
	urls sync.Map // instance URL → *url.URL (instances are few)
}

// parse returns the parsed instance URL, parsing each only once.
func (t *transport) parse(raw string) (*url.URL, error) {
	if u, ok := t.urls.Load(raw); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	t.urls.Store(raw, u)
	return u, nil
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	in, err := t.b.Pick()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	traceInstance(req.Context(), in.ID)
	base, err := t.parse(in.URL)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("balance: instance %q of %q: %w", in.ID, t.b.cluster, err)
	}
	// A shallow copy with its own URL: the headers and body are the
	// caller's and go out unchanged (a RoundTripper must not modify the
	// request it is given, and this one does not).
	out := new(http.Request)
	*out = *req
	u := *req.URL
	out.URL = &u
	out.URL.Scheme, out.URL.Host = base.Scheme, base.Host
	if prefix := strings.TrimSuffix(base.Path, "/"); prefix != "" {
		out.URL.Path = prefix + req.URL.Path
		if req.URL.RawPath != "" {
			out.URL.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + req.URL.RawPath
		}
	}
	out.Host = ""
	resp, err := t.next.RoundTrip(out)
	switch {
	case err != nil:
		if !errors.Is(err, context.Canceled) {
			t.b.Report(in.ID, false)
		}
		return nil, fmt.Errorf("balance: %s instance %s: %w", t.b.cluster, in.ID, err)
	default:
		t.b.Report(in.ID, resp.StatusCode < 500)
		return resp, nil
	}
}
