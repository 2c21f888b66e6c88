package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agora-commerce/agora/internal/identity/app"
	"github.com/agora-commerce/agora/internal/ops"
	"github.com/agora-commerce/agora/internal/progress"
)

// projectionsUsage heads `agora projections -h`.
const projectionsUsage = `usage: agora projections [flags] URL            list the projections and how far each has got
       agora projections rebuild [flags] URL NAME  rebuild one and follow it to the end

Talks to a running platform at URL (embedded or distributed) as an admin
of the tenant: the list is GET /api/v1/ops/processing; rebuild asks
POST /api/v1/ops/projections/NAME/rebuild to empty NAME's read model and
replay the log into it while the platform goes on serving, then shows its
progress (a bar on a terminal, plain lines otherwise) until it is over.
A rebuild already running is followed rather than started again. The exit
status is 1 when the rebuild fails. For a server with its own development
certificate, set SSL_CERT_FILE to it.

flags:`

// projectionsConfig configures `agora projections`.
type projectionsConfig struct {
	url, name                         string
	rebuild                           bool
	tenant, adminEmail, adminPassword string
	poll, interval                    time.Duration
}

// parseProjections reads `agora projections [rebuild]`'s flags and
// arguments (flags may come after them).
func (m *Main) parseProjections(args []string) error {
	c := &m.projections
	if len(args) > 0 && args[0] == "rebuild" {
		c.rebuild, args = true, args[1:]
		m.command = "projections rebuild"
	} else {
		m.command = "projections"
	}
	fs := flag.NewFlagSet(m.command, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), projectionsUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.tenant, "tenant", env("AGORA_TENANT", "demo"), "the admin's tenant (AGORA_TENANT)")
	fs.StringVar(&c.adminEmail, "admin-email", env("AGORA_ADMIN_EMAIL", app.DemoAdminEmail), "an admin of the tenant (AGORA_ADMIN_EMAIL)")
	fs.StringVar(&c.adminPassword, "admin-password", env("AGORA_ADMIN_PASSWORD", app.DemoAdminPassword), "that admin's password (AGORA_ADMIN_PASSWORD)")
	fs.BoolVar(&m.asJSON, "json", false, "print JSON instead of a table (the list; a rebuild's final status)")
	fs.DurationVar(&c.poll, "poll", 250*time.Millisecond, "how often a rebuild's progress is asked for")
	fs.DurationVar(&c.interval, "interval", progress.DefaultInterval, "how often a progress line is printed when stderr is not a terminal")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	want := 1
	if c.rebuild {
		want = 2
	}
	if len(rest) != want {
		return fmt.Errorf("%s: want %s, got %q (agora projections -h)", m.command, map[int]string{1: "URL", 2: "URL and a projection's name"}[want], rest)
	}
	u, err := url.Parse(rest[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http(s) URL", m.command, rest[0])
	}
	c.url = strings.TrimRight(rest[0], "/")
	if c.rebuild {
		c.name = rest[1]
	}
	if c.poll <= 0 || c.interval <= 0 {
		return fmt.Errorf("%s: --poll and --interval must be positive", m.command)
	}
	return nil
}

// opsClient calls a platform's operations API as an admin.
type opsClient struct {
	base, token string
	http        *http.Client
}

// apiError is a non-2xx answer: its status and problem document.
type apiError struct {
	status int
	reason string
	detail string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.status)
	if e.reason != "" {
		s += " " + e.reason
	}
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// do sends a request and decodes a 2xx answer's JSON into out.
func (c *opsClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Reason string `json:"reason"`
			Detail string `json:"detail"`
			Title  string `json:"title"`
		}
		_ = json.Unmarshal(raw, &p)
		return &apiError{status: resp.StatusCode, reason: p.Reason, detail: cmp.Or(p.Detail, p.Title)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
		}
	}
	return nil
}

// processing is the part of GET /api/v1/ops/processing the command reads.
type processing struct {
	Projections []ops.ProjectionStatus `json:"projections"`
}

// runProjections lists the projections or rebuilds one.
func (m *Main) runProjections(ctx context.Context) error {
	c := m.projections
	cl := &opsClient{base: c.url, http: &http.Client{}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := cl.do(ctx, "POST", "/api/v1/auth/token", map[string]string{"email": c.adminEmail, "password": c.adminPassword, "tenant": c.tenant}, &tok); err != nil {
		return fmt.Errorf("%s: logging in as %s (tenant %q): %w; pass --admin-email and --admin-password of an admin", m.command, c.adminEmail, c.tenant, err)
	}
	cl.token = tok.AccessToken
	if !c.rebuild {
		var p processing
		if err := cl.do(ctx, "GET", "/api/v1/ops/processing", nil, &p); err != nil {
			return fmt.Errorf("projections: %w", err)
		}
		if m.asJSON {
			enc := json.NewEncoder(m.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p.Projections)
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "projection\tcheckpoint\tlag\tlast rebuild")
		for _, s := range p.Projections {
			last := "-"
			if rb := s.Rebuild; rb != nil {
				last = fmt.Sprintf("%s, started %s", rb.State, rb.StartedAt.Local().Format(time.DateTime))
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Name, s.Checkpoint, s.Lag, last)
		}
		return tw.Flush()
	}
	return m.rebuildProjection(ctx, cl)
}

// errRebuildFailed is returned when the platform reports the rebuild failed.
var errRebuildFailed = errors.New("the rebuild failed")

// rebuildProjection starts (or joins) the rebuild of c.name and follows it.
func (m *Main) rebuildProjection(ctx context.Context, cl *opsClient) error {
	c := m.projections
	path := "/api/v1/ops/projections/" + url.PathEscape(c.name) + "/rebuild"
	asked := time.Now()
	err := cl.do(ctx, "POST", path, nil, nil)
	var ae *apiError
	switch {
	case err == nil:
	case errors.As(err, &ae) && ae.reason == "rebuild_running":
		m.logf("projections rebuild: a rebuild of %s is already running: following it", c.name)
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		var p processing
		if lerr := cl.do(ctx, "GET", "/api/v1/ops/processing", nil, &p); lerr == nil {
			var names []string
			for _, s := range p.Projections {
				names = append(names, s.Name)
			}
			slices.Sort(names)
			return fmt.Errorf("projections rebuild: no projection %q here (%w); there are: %s", c.name, err, strings.Join(names, ", "))
		}
		return fmt.Errorf("projections rebuild: %s: %w", c.name, err)
	default:
		return fmt.Errorf("projections rebuild: %s: %w", c.name, err)
	}
	bar := progress.New(m.Stderr, progress.Options{Name: "projections rebuild", Unit: "events", Rate: true,
		Terminal: progress.IsTerminal(m.Stderr), Interval: c.interval})
	bar.Describe("rebuilding " + c.name)
	defer bar.Finish()
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	for {
		var p processing
		if err := cl.do(ctx, "GET", "/api/v1/ops/processing", nil, &p); err != nil {
			return fmt.Errorf("projections rebuild: following %s: %w", c.name, err)
		}
		var st *ops.ProjectionStatus
		for i := range p.Projections {
			if p.Projections[i].Name == c.name {
				st = &p.Projections[i]
			}
		}
		if st == nil || st.Rebuild == nil {
			// Another instance of the service answered, or the process
			// restarted: the rebuild is not visible from here.
			return fmt.Errorf("projections rebuild: %s: the platform no longer reports this rebuild (another instance answered, or it restarted)", c.name)
		}
		rb := st.Rebuild
		if rb.Target > 0 {
			bar.Set(int(min(rb.Position, rb.Target)), int(rb.Target))
		}
		if rb.State != "running" {
			bar.Finish()
			if m.asJSON {
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			}
			took := time.Since(asked)
			if rb.EndedAt != nil {
				took = rb.EndedAt.Sub(rb.StartedAt)
			}
			if rb.State == "failed" {
				return fmt.Errorf("projections rebuild: %s: %w: %s", c.name, errRebuildFailed, rb.Error)
			}
			if !m.asJSON {
				fmt.Fprintf(m.Stdout, "rebuilt %s: replayed the log to position %d in %s; now at %d, lag %d\n",
					c.name, rb.Position, took.Round(time.Millisecond), st.Checkpoint, st.Lag)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("projections rebuild: stopped following %s, which goes on in the platform: %w", c.name, ctx.Err())
		case <-tick.C:
		}
	}
}
