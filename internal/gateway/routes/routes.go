// Package routes is the gateway's route table: which upstream cluster
// serves a request, whether it needs a JWT and which roles, its rate-limit
// class, whether it may be retried and its timeout.
//
// The table is YAML. Default returns the table embedded in the binary
// (default.yaml, covering every path of the v1 API); Load and Parse read
// another. Parsing is strict: unknown keys, duplicate keys, unknown
// clusters, roles or rate-limit classes and invalid or conflicting
// patterns are errors that name the offending route.
//
// A table looks like this:
//
//	clusters:             # upstream clusters, optionally with resilience settings
//	  catalog: {}
//	  ordering: {max_concurrent: 128, attempt_timeout: 5s, max_retries: 1}
//	rate_limits:          # classes; a limit is rate per period with a burst
//	  default:
//	    client: {rate: 600, period: 1m, burst: 120}
//	    tenant: {rate: 12000, period: 1m}
//	defaults: {timeout: 10s, rate_limit: default}
//	routes:
//	  - pattern: GET /api/v1/products/{id}   # a Go 1.22 ServeMux pattern with a method
//	    cluster: catalog                     # or "local": served by the gateway itself
//	    auth: none                           # none | required (the default)
//	  - pattern: POST /api/v1/products
//	    cluster: catalog
//	    roles: [merchant, admin]             # any of; implies auth: required
//	    rate_limit: default
//	    idempotent: false                    # overrides the method's default
//	    timeout: 5s                          # 0s: no timeout (streams)
package routes

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default route table's source.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Local is the reserved cluster name of routes the gateway serves itself
// (health, metrics, the OpenAPI document, the console).
const Local = "local"

// Auth says whether a route needs an authenticated caller.
type Auth string

// The authentication modes.
const (
	// AuthNone: anyone may call the route.
	AuthNone Auth = "none"
	// AuthRequired: the caller needs a valid JWT.
	AuthRequired Auth = "required"
)

// Roles are the roles a route may require.
var Roles = []string{"customer", "merchant", "admin"}

// Limit is a token-bucket limit: Rate requests per Period, with bursts of
// up to Burst. The zero Limit means no limit.
type Limit struct {
	// Rate is the number of requests per Period.
	Rate int `yaml:"rate"`
	// Period is the window Rate is counted over.
	Period time.Duration `yaml:"period"`
	// Burst is the bucket size; it defaults to Rate.
	Burst int `yaml:"burst"`
}

// IsZero reports whether l is no limit.
func (l Limit) IsZero() bool { return l == Limit{} }

// RateLimitClass is a named pair of limits: one per client (JWT subject or
// client IP) and one per tenant. A zero limit does not apply.
type RateLimitClass struct {
	// Name is the class's name in the table.
	Name string `yaml:"-"`
	// Client limits each client.
	Client Limit `yaml:"client"`
	// Tenant limits each tenant as a whole.
	Tenant Limit `yaml:"tenant"`
}

// Cluster is an upstream cluster and its optional resilience overrides;
// zero values mean the gateway's defaults.
type Cluster struct {
	// Name is the cluster's name.
	Name string `yaml:"-"`
	// MaxConcurrent bounds in-flight requests to the cluster (bulkhead).
	MaxConcurrent uint `yaml:"max_concurrent"`
	// AttemptTimeout bounds one attempt of a request to the cluster.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// MaxRetries bounds the retries of an idempotent request; 0 means
	// none, nil the default.
	MaxRetries *int `yaml:"max_retries"`
}

// Route is one entry of the table.
type Route struct {
	// Pattern is the ServeMux pattern, e.g. "GET /api/v1/products/{id}".
	Pattern string
	// Method is the pattern's method.
	Method string
	// Cluster is the upstream cluster, or Local.
	Cluster string
	// Auth says whether a JWT is needed.
	Auth Auth
	// Roles, when not empty, lets in callers holding any of them.
	Roles []string
	// RateLimit is the route's rate-limit class.
	RateLimit string
	// Idempotent, when not nil, overrides whether requests on the route
	// are safe to retry.
	Idempotent *bool
	// Timeout bounds the whole request, retries included; 0 means none.
	Timeout time.Duration
	// Check names a check the gateway runs before proxying (CheckOrder),
	// or is empty.
	Check string
}

// CheckOrder checks an order placement's products and stock (catalog and
// inventory, in parallel) before it reaches the upstream.
const CheckOrder = "order"

// IdempotencyKeyHeader is the header that makes a POST safe to retry.
const IdempotencyKeyHeader = "Idempotency-Key"

// IsIdempotent reports whether req may be retried: the route's override
// if it has one, else GET, HEAD and OPTIONS, and POST carrying an
// Idempotency-Key.
func (rt *Route) IsIdempotent(req *http.Request) bool {
	if rt != nil && rt.Idempotent != nil {
		return *rt.Idempotent
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	case http.MethodPost:
		return req.Header.Get(IdempotencyKeyHeader) != ""
	}
	return false
}

// Permits reports whether a caller holding roles may use the route:
// always when the route names no roles, else when roles holds any of them.
func (rt *Route) Permits(roles []string) bool {
	if len(rt.Roles) == 0 {
		return true
	}
	for _, r := range roles {
		if slices.Contains(rt.Roles, r) {
			return true
		}
	}
	return false
}

// Table is a parsed, validated route table. It is read-only after Parse
// and safe for concurrent use.
type Table struct {
	// Clusters are the declared upstream clusters by name.
	Clusters map[string]Cluster
	// RateLimits are the rate-limit classes by name.
	RateLimits map[string]RateLimitClass
	// Routes are the routes in table order.
	Routes []*Route

	mux       *http.ServeMux
	byPattern map[string]*Route
}

// Default returns the embedded default table. It panics if that table is
// invalid, which its tests rule out.
func Default() *Table {
	t, err := Parse(defaultYAML)
	if err != nil {
		panic(fmt.Sprintf("routes: embedded default table: %v", err))
	}
	return t
}

// Load reads and parses the table in file path.
func Load(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// The YAML document. Pointers tell "absent" from zero.
type document struct {
	Clusters   map[string]*Cluster        `yaml:"clusters"`
	RateLimits map[string]*RateLimitClass `yaml:"rate_limits"`
	Defaults   struct {
		Timeout   *time.Duration `yaml:"timeout"`
		RateLimit string         `yaml:"rate_limit"`
	} `yaml:"defaults"`
	Routes []struct {
		Pattern    string         `yaml:"pattern"`
		Cluster    string         `yaml:"cluster"`
		Auth       Auth           `yaml:"auth"`
		Roles      []string       `yaml:"roles"`
		RateLimit  string         `yaml:"rate_limit"`
		Idempotent *bool          `yaml:"idempotent"`
		Timeout    *time.Duration `yaml:"timeout"`
		Check      string         `yaml:"check"`
	} `yaml:"routes"`
}

// Parse parses and validates a YAML route table.
func Parse(data []byte) (*Table, error) {
	var doc document
	if err := yaml.UnmarshalWithOptions(data, &doc, yaml.Strict()); err != nil {
		return nil, fmt.Errorf("routes: %s", yaml.FormatError(err, false, true))
	}
	t := &Table{
		Clusters:   map[string]Cluster{},
		RateLimits: map[string]RateLimitClass{},
		mux:        http.NewServeMux(),
		byPattern:  map[string]*Route{},
	}
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }

	if len(doc.Clusters) == 0 {
		bad("no clusters declared")
	}
	for name, c := range doc.Clusters {
		var cl Cluster
		if c != nil {
			cl = *c
		}
		cl.Name = name
		switch {
		case name == Local:
			bad("cluster %q: the name is reserved for routes the gateway serves itself", name)
		case !validName(name):
			bad("cluster %q: names are lower-case letters, digits, '-' and '_'", name)
		case cl.AttemptTimeout < 0:
			bad("cluster %q: attempt_timeout must not be negative", name)
		case cl.MaxRetries != nil && *cl.MaxRetries < 0:
			bad("cluster %q: max_retries must not be negative", name)
		}
		t.Clusters[name] = cl
	}
	for name, c := range doc.RateLimits {
		var rc RateLimitClass
		if c != nil {
			rc = *c
		}
		rc.Name = name
		for _, l := range []struct {
			who string
			l   *Limit
		}{{"client", &rc.Client}, {"tenant", &rc.Tenant}} {
			if l.l.IsZero() {
				continue
			}
			if l.l.Burst == 0 {
				l.l.Burst = l.l.Rate
			}
			if l.l.Rate <= 0 || l.l.Period <= 0 || l.l.Burst < 0 {
				bad("rate limit %q: %s: rate and period must be positive and burst not negative", name, l.who)
			}
		}
		t.RateLimits[name] = rc
	}
	defTimeout := 10 * time.Second
	if doc.Defaults.Timeout != nil {
		defTimeout = *doc.Defaults.Timeout
		if defTimeout < 0 {
			bad("defaults: timeout must not be negative")
		}
	}
	defClass := doc.Defaults.RateLimit
	if _, ok := t.RateLimits[defClass]; defClass != "" && !ok {
		bad("defaults: unknown rate limit class %q (declared: %s)", defClass, keys(t.RateLimits))
	}

	if len(doc.Routes) == 0 {
		bad("no routes")
	}
	for i, raw := range doc.Routes {
		where := fmt.Sprintf("route %d (%q)", i+1, raw.Pattern)
		rt := &Route{
			Pattern:    raw.Pattern,
			Cluster:    raw.Cluster,
			Auth:       raw.Auth,
			Roles:      raw.Roles,
			RateLimit:  raw.RateLimit,
			Idempotent: raw.Idempotent,
			Timeout:    defTimeout,
			Check:      raw.Check,
		}
		if rt.Check != "" && rt.Check != CheckOrder {
			bad("%s: unknown check %q (known: %q)", where, rt.Check, CheckOrder)
		}
		if raw.Timeout != nil {
			rt.Timeout = *raw.Timeout
		}
		if rt.RateLimit == "" {
			rt.RateLimit = defClass
		}
		if rt.Auth == "" {
			rt.Auth = AuthRequired
		}
		method, _, ok := strings.Cut(strings.TrimSpace(raw.Pattern), " ")
		switch {
		case raw.Pattern == "":
			bad("%s: pattern is required", where)
			continue
		case !ok || method == "" || strings.Contains(method, "/"):
			bad("%s: pattern must start with a method, e.g. \"GET /api/v1/products\"", where)
			continue
		}
		rt.Method = method
		if err := register(t.mux, raw.Pattern); err != nil {
			bad("%s: %v", where, err)
			continue
		}
		if _, known := t.Clusters[rt.Cluster]; !known && rt.Cluster != Local {
			if rt.Cluster == "" {
				bad("%s: cluster is required", where)
			} else {
				bad("%s: unknown cluster %q (declared: %s, or %q)", where, rt.Cluster, keys(t.Clusters), Local)
			}
		}
		switch rt.Auth {
		case AuthNone:
			if len(rt.Roles) > 0 {
				bad("%s: roles need auth: required, not none", where)
			}
		case AuthRequired:
		default:
			bad("%s: auth must be %q or %q, not %q", where, AuthNone, AuthRequired, rt.Auth)
		}
		for _, r := range rt.Roles {
			if !slices.Contains(Roles, r) {
				bad("%s: unknown role %q (roles: %s)", where, r, strings.Join(Roles, ", "))
			}
		}
		if _, ok := t.RateLimits[rt.RateLimit]; !ok {
			if rt.RateLimit == "" {
				bad("%s: no rate_limit class and no defaults.rate_limit", where)
			} else {
				bad("%s: unknown rate limit class %q (declared: %s)", where, rt.RateLimit, keys(t.RateLimits))
			}
		}
		if rt.Timeout < 0 {
			bad("%s: timeout must not be negative", where)
		}
		t.Routes = append(t.Routes, rt)
		t.byPattern[rt.Pattern] = rt
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("routes: invalid table: %w", errors.Join(problems...))
	}
	return t, nil
}

// register adds pattern to mux, turning ServeMux's panic on an invalid or
// conflicting pattern into an error.
func register(mux *http.ServeMux, pattern string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// Match returns the route r would be served by, as ServeMux would choose
// it (most specific pattern wins), or false when no route matches r's
// method and path.
func (t *Table) Match(r *http.Request) (*Route, bool) {
	_, pattern := t.mux.Handler(r)
	rt, ok := t.byPattern[pattern]
	return rt, ok
}

// Register adds every route to mux with the handler h returns for it.
// Route patterns are validated by Parse, so Register does not panic
// unless mux already holds a conflicting pattern.
func (t *Table) Register(mux *http.ServeMux, h func(*Route) http.Handler) {
	for _, rt := range t.Routes {
		mux.Handle(rt.Pattern, h(rt))
	}
}
