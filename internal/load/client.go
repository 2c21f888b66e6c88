package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// client calls the platform's API and records every answer.
type client struct {
	base string
	http *http.Client
	st   *stats
	// waiting, if set, is told of every wait on a 429 of a request that
	// is not counted (setup's).
	waiting func(route string, status int, d time.Duration)
}

// call is one API request and what its answers mean.
type call struct {
	// scenario is the row the request is counted in ("": setup, not
	// counted).
	scenario string
	method   string
	// path is the path with query; route is its pattern, which names the
	// request in error messages ("GET /api/v1/orders/{id}").
	path, route string
	token       string
	body        any
	// idemKey, if set, is sent as Idempotency-Key (and again on retries
	// after a 429, so that a retry is the same request).
	idemKey string
	// want are the statuses that are the scenario's success; refuse are
	// those it asked for (expected refusals).
	want, refuse []int
	// out, if set, receives a success's JSON body.
	out any
	// judge, if set, judges a success once out holds its body: a body
	// that says the scenario went wrong makes it an error (with the
	// message), or an expected refusal.
	judge func() (Outcome, string)
}

// answer is what a call got.
type answer struct {
	status int
	// sent is when the request that got this answer was sent (after any
	// 429s).
	sent time.Time
	// noServer: the connection was refused (nothing listens there).
	noServer bool
	// raw is the body of an answer that was not a success.
	raw []byte
}

// errThrottled is returned when a request stayed throttled through every
// retry.
var errThrottled = errors.New("still 429 after 20 tries")

// maxRetryAfter bounds one wait on a 429.
const maxRetryAfter = 60 * time.Second

// transportPause follows a request that got no answer.
const transportPause = 50 * time.Millisecond

// requestTimeout bounds one request (not a followed event stream).
const requestTimeout = 30 * time.Second

// do sends k until it is answered with something other than 429 (waiting
// each 429's Retry-After), records every answer in k's scenario and
// returns the last. The error is nil for a wanted or refused status and
// describes anything else; a request cut by ctx's end is not recorded
// and returns ctx's error.
func (c *client) do(ctx context.Context, k call) (answer, error) {
	var data []byte
	if k.body != nil {
		var err error
		if data, err = json.Marshal(k.body); err != nil {
			return answer{}, err
		}
	}
	transient := 0
	for try := 0; try < 20; try++ {
		a, o, wait, err := c.once(ctx, k, data)
		if ctx.Err() != nil {
			return a, ctx.Err()
		}
		if o == Failed && k.scenario == "" && transient < 5 && ((a.status == 0 && !a.noServer) || a.status == 502 || a.status == 503 || a.status == 504) {
			// Setup is not measured: a platform briefly too busy to
			// answer (a 503 "retry shortly", a dropped connection)
			// is asked again rather than ending the run before it
			// starts.
			transient++
			o, wait = Throttled, time.Duration(transient)*500*time.Millisecond
		}
		if o != Throttled {
			return a, err
		}
		if k.scenario == "" && c.waiting != nil {
			c.waiting(k.route, a.status, wait)
		}
		select {
		case <-ctx.Done():
			return a, ctx.Err()
		case <-time.After(wait):
		}
	}
	return answer{status: http.StatusTooManyRequests}, fmt.Errorf("%s: %w", k.route, errThrottled)
}

// once sends k once and records the answer.
func (c *client) once(ctx context.Context, k call, data []byte) (answer, Outcome, time.Duration, error) {
	var body io.Reader
	if data != nil {
		body = bytes.NewReader(data)
	}
	// The parent ctx ending (Ctrl-C, the run's end) is not the
	// platform's fault; a request that takes longer than requestTimeout is.
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, k.method, c.base+k.path, body)
	if err != nil {
		return answer{}, Failed, 0, err
	}
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if k.token != "" {
		req.Header.Set("Authorization", "Bearer "+k.token)
	}
	if k.idemKey != "" {
		req.Header.Set("Idempotency-Key", k.idemKey)
	}
	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return answer{sent: start}, Failed, 0, ctx.Err()
		}
		a := answer{sent: start, noServer: errors.Is(err, syscall.ECONNREFUSED)}
		err = fmt.Errorf("%s: %s", k.route, transportError(err))
		c.record(k.scenario, Failed, 0, start, time.Since(start), err.Error())
		if k.scenario != "" {
			// A platform gone answers at once: a short pause keeps the
			// users from spinning.
			select {
			case <-ctx.Done():
			case <-time.After(transportPause):
			}
		}
		return a, Failed, 0, err
	}
	raw, rerr := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	res.Body.Close()
	latency := time.Since(start)
	a := answer{status: res.StatusCode, sent: start}
	if rerr != nil {
		if ctx.Err() != nil {
			return a, Failed, 0, ctx.Err()
		}
		err = fmt.Errorf("%s: reading the answer: %s", k.route, transportError(rerr))
		c.record(k.scenario, Failed, res.StatusCode, start, latency, err.Error())
		return a, Failed, 0, err
	}
	switch {
	case res.StatusCode == http.StatusTooManyRequests:
		c.record(k.scenario, Throttled, res.StatusCode, start, latency, "")
		return a, Throttled, retryAfter(res.Header.Get("Retry-After")), nil
	case slices.Contains(k.want, res.StatusCode):
		if k.out != nil {
			if err := json.Unmarshal(raw, k.out); err != nil {
				err = fmt.Errorf("%s: %d with a body that is not the expected JSON: %v", k.route, res.StatusCode, err)
				c.record(k.scenario, Failed, res.StatusCode, start, latency, err.Error())
				return a, Failed, 0, err
			}
		}
		o, msg := OK, ""
		if k.judge != nil {
			o, msg = k.judge()
		}
		if msg != "" {
			err = fmt.Errorf("%s: %s", k.route, msg)
			msg = err.Error()
		}
		c.record(k.scenario, o, res.StatusCode, start, latency, msg)
		return a, o, 0, err
	case slices.Contains(k.refuse, res.StatusCode):
		a.raw = raw
		c.record(k.scenario, Refused, res.StatusCode, start, latency, "")
		return a, Refused, 0, nil
	}
	a.raw = raw
	err = fmt.Errorf("%s: %d%s", k.route, res.StatusCode, problemSummary(raw))
	c.record(k.scenario, Failed, res.StatusCode, start, latency, err.Error())
	return a, Failed, 0, err
}

func (c *client) record(scenario string, o Outcome, code int, start time.Time, latency time.Duration, msg string) {
	if scenario != "" {
		c.st.record(scenario, o, code, start, latency, msg)
	}
}

// retryAfter reads a Retry-After in seconds (an HTTP date too), 1 s when
// absent or unreadable, at most maxRetryAfter.
func retryAfter(v string) time.Duration {
	d := time.Second
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	return min(d, maxRetryAfter)
}

// problemSummary is " reason: detail" of a problem+json body, or a
// short prefix of any other body.
func problemSummary(raw []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(raw, &p) == nil && (p.Title != "" || p.Reason != "") {
		s := " " + p.Reason
		if p.Reason == "" {
			s = " " + p.Title
		}
		if p.Detail != "" {
			s += ": " + p.Detail
		}
		return s
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	if s == "" {
		return ""
	}
	return " " + s
}

// transportError shortens a transport error to what varies less than
// its URL (so that the same failure is counted as one kind).
func transportError(err error) string {
	msg := err.Error()
	// *url.Error: `Get "http://…": dial tcp …: connection refused`
	if i := strings.Index(msg, "\": "); i >= 0 {
		msg = msg[i+3:]
	}
	return msg
}
