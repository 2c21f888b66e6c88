package ratelimit

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/edge"
	"github.com/agora-commerce/agora/internal/gateway/problem"
)

// The response headers (draft-ietf-httpapi-ratelimit-headers) and the
// problem reason of a 429.
const (
	// HeaderLimit is the bucket size of the binding limit.
	HeaderLimit = "RateLimit-Limit"
	// HeaderRemaining is the requests left in it now.
	HeaderRemaining = "RateLimit-Remaining"
	// HeaderReset is the seconds until it is full again.
	HeaderReset = "RateLimit-Reset"
	// ReasonRateLimited is the problem reason of a 429.
	ReasonRateLimited = "rate_limited"
)

// Identity is who a request counts against.
type Identity struct {
	// Client is the caller: a JWT subject, or the client IP of an
	// anonymous request. Empty: no client limit.
	Client string
	// Tenant is the caller's tenant. Empty: no tenant limit.
	Tenant string
}

// Policy is the limits of one rate-limit class (a route's).
type Policy struct {
	// Name is the class; buckets are per class, so that a tight class
	// (logins) does not eat into a loose one.
	Name string
	// Client limits each client.
	Client Limit
	// Tenant limits each tenant as a whole.
	Tenant Limit
}

// Options configure Middleware. Limiter and Policy are required.
type Options struct {
	// Limiter keeps the buckets.
	Limiter Limiter
	// Policy returns the limits for a request; false means none apply.
	Policy func(*http.Request) (Policy, bool)
	// Identify says who a request counts against; by default the client
	// IP, with no tenant. The gateway passes the JWT's subject and tenant.
	Identify func(*http.Request) Identity
	// FailClosed answers 503 when the Limiter fails (Redis down);
	// by default such requests pass, and the failure is logged.
	FailClosed bool
	// Logger receives Limiter failures (default slog.Default()).
	Logger *slog.Logger
	// OnRefused, if set, is told of every request refused with 429, with
	// the limit that refused it: "client" or "tenant" (for metrics; it
	// must be cheap).
	OnRefused func(limit string)
}

// IdentifyByIP is the default Identify: the client IP, no tenant.
func IdentifyByIP(r *http.Request) Identity {
	return Identity{Client: "ip:" + edge.ClientIP(r)}
}

// Middleware limits requests per client and per tenant. A request over a
// limit gets 429 problem+json with Retry-After; every limited response
// carries RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset of
// the binding limit (the one with the fewest requests left). Requests
// with no applicable limit get no headers.
func Middleware(opts Options) func(http.Handler) http.Handler {
	if opts.Limiter == nil || opts.Policy == nil {
		panic("ratelimit: Middleware needs a Limiter and a Policy")
	}
	if opts.Identify == nil {
		opts.Identify = IdentifyByIP
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := opts.Policy(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			id := opts.Identify(r)
			type check struct {
				who, key string
				limit    Limit
			}
			var buf [2]check
			checks := buf[:0]
			if !p.Client.IsZero() && id.Client != "" {
				checks = append(checks, check{"client", "client:" + p.Name + ":" + id.Client, p.Client})
			}
			if !p.Tenant.IsZero() && id.Tenant != "" {
				checks = append(checks, check{"tenant", "tenant:" + p.Name + ":" + id.Tenant, p.Tenant})
			}
			var binding Result
			bound := false
			for _, c := range checks {
				res, err := opts.Limiter.Allow(r.Context(), c.key, c.limit)
				if err != nil {
					opts.Logger.WarnContext(r.Context(), "gateway: rate limiter failed", "class", p.Name, "limit", c.who, "err", err)
					if opts.FailClosed {
						w.Header().Set("Retry-After", "1")
						problem.Write(w, r, http.StatusServiceUnavailable, "rate_limiter_unavailable", "the rate limiter is unavailable; retry shortly")
						return
					}
					continue
				}
				if !res.Allowed {
					if opts.OnRefused != nil {
						opts.OnRefused(c.who)
					}
					setHeaders(w.Header(), res)
					w.Header().Set("Retry-After", strconv.Itoa(max(seconds(res.RetryAfter), 1)))
					problem.Write(w, r, http.StatusTooManyRequests, ReasonRateLimited,
						fmt.Sprintf("too many requests for this %s (%d per %v); retry in %d s", c.who, c.limit.Rate, c.limit.Period, max(seconds(res.RetryAfter), 1)))
					return
				}
				if !bound || res.Remaining < binding.Remaining {
					binding, bound = res, true
				}
			}
			if bound {
				setHeaders(w.Header(), binding)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// The headers' canonical keys, computed once.
var (
	keyLimit     = http.CanonicalHeaderKey(HeaderLimit)
	keyRemaining = http.CanonicalHeaderKey(HeaderRemaining)
	keyReset     = http.CanonicalHeaderKey(HeaderReset)
)

func setHeaders(h http.Header, res Result) {
	v := make([]string, 3) // one allocation for the three values
	v[0], v[1], v[2] = itoa(res.Limit), itoa(res.Remaining), itoa(seconds(res.ResetAfter))
	h[keyLimit], h[keyRemaining], h[keyReset] = v[0:1:1], v[1:2:2], v[2:3:3]
}

// small holds the decimal strings of 0 to 1023, the usual header values.
var small = func() (s [1024]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func itoa(n int) string {
	if n >= 0 && n < len(small) {
		return small[n]
	}
	return strconv.Itoa(n)
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
