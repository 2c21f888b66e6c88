package app

import (
	"strings"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
)

// Login throttling: after FreeLoginFailures failed logins for one email
// in a tenant within LoginFailureWindow, each later attempt must wait a
// delay that doubles with every further failure (1 s, 2 s, 4 s, … at most
// MaxLoginDelay); an attempt that comes sooner is refused 429 with
// Retry-After without checking the password. Every email is counted
// alike, registered or not, so the answers tell nobody whether an account
// exists. A successful login clears the count.
const (
	// FreeLoginFailures is how many failures in the window cost nothing.
	FreeLoginFailures = 5
	// LoginFailureWindow is how long a failure counts.
	LoginFailureWindow = 15 * time.Minute
	// MaxLoginDelay caps the wait between attempts.
	MaxLoginDelay = 15 * time.Minute
	// loginKeys bounds the emails followed at once (the least recently
	// failed go first).
	loginKeys = 100_000
)

// failures is one email's recent failed logins.
type failures struct {
	mu    sync.Mutex
	count int
	first time.Time // the first failure of the window
	until time.Time // no attempt before then
}

// throttle follows failed logins per tenant and email, in this process
// (a distributed deployment's identity instances each follow their own;
// the gateway's per-client auth rate limit stands in front of all).
type throttle struct {
	cache *otter.Cache[string, *failures]
}

func newThrottle() *throttle {
	return &throttle{cache: otter.Must(&otter.Options[string, *failures]{
		MaximumSize:      loginKeys,
		ExpiryCalculator: otter.ExpiryWriting[string, *failures](LoginFailureWindow + MaxLoginDelay),
	})}
}

func throttleKey(tenant, email string) string {
	return tenant + "\x00" + strings.ToLower(strings.TrimSpace(email))
}

// wait returns how long the email must still wait before an attempt (0:
// it may try now).
func (t *throttle) wait(key string, now time.Time) time.Duration {
	f, ok := t.cache.GetIfPresent(key)
	if !ok {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Before(f.until) {
		return f.until.Sub(now)
	}
	return 0
}

// failed counts a failure and returns the wait it now imposes (0 while
// the failures are still free).
func (t *throttle) failed(key string, now time.Time) time.Duration {
	f, _ := t.cache.Compute(key, func(old *failures, found bool) (*failures, otter.ComputeOp) {
		if !found {
			return &failures{}, otter.WriteOp
		}
		return old, otter.WriteOp // a write: the entry lives on
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == 0 || now.Sub(f.first) > LoginFailureWindow && !now.Before(f.until) {
		f.count, f.first = 0, now
	}
	f.count++
	if f.count <= FreeLoginFailures {
		return 0
	}
	delay := min(time.Second<<min(f.count-FreeLoginFailures-1, 20), MaxLoginDelay)
	f.until = now.Add(delay)
	return delay
}

// succeeded clears the email's failures.
func (t *throttle) succeeded(key string) { t.cache.Invalidate(key) }
