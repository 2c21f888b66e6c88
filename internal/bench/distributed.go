package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/ordering/orderingapi"
)

// Distributed says where `agora bench checkout --distributed` runs the
// platform: as processes of the agora command, one per context, on
// PostgreSQL and NATS (and Redis, if given).
type Distributed struct {
	// PostgresURL and NATSURL are required. The run keeps its data in a
	// schema prefix and a NATS namespace of its own, made fresh for it
	// and removed at the end.
	PostgresURL, NATSURL string
	// RedisURL, if set, is the processes' shared cache tier.
	RedisURL string
	// Command is the agora binary the processes run (default: this
	// program, os.Executable, so that `go run ./cmd/agora bench …` works).
	Command string
	// Env is added to the processes' environment.
	Env []string
	// ProfileDir, if set, has each process write a CPU profile of its run
	// (setup included) to <ProfileDir>/<process>.pprof as it stops.
	ProfileDir string
}

// ErrDistributedSetup says what --distributed needs and was not given.
var ErrDistributedSetup = errors.New("bench checkout --distributed needs PostgreSQL (--postgres or AGORA_POSTGRES_URL) and NATS (--nats or AGORA_NATS_URL)")

// distributedProcesses are the processes of a distributed run, in the
// order they start, with the context each runs: identity first (the
// others check tokens with its keys), then each context, the second
// instances of ordering and payments, and the gateway last.
var distributedProcesses = []struct{ name, only string }{
	{"identity", "identity"}, {"catalog", "catalog"}, {"inventory", "inventory"}, {"shipping", "shipping"},
	{"payments", "payments"}, {"ordering", "ordering"}, {"bff", "bff"},
	{"payments-2", "payments"}, {"ordering-2", "ordering"}, {"gateway", "gateway"},
}

// processReady bounds how long a process may take to become ready.
const processReady = 60 * time.Second

// distributed is a platform run as processes, reached at its gateway.
type distributed struct {
	cfg       Distributed
	logf      func(string, ...any)
	schema    string // PostgreSQL schema prefix
	namespace string // NATS namespace
	procs     []*proc
	nc        *nats.Conn
	c         benchClient
	subs      []*nats.Subscription
}

// proc is one process of the platform.
type proc struct {
	name, addr, log string
	cmd             *exec.Cmd
	done            chan struct{} // closed when it has exited
	err             error         // why it exited, once done
}

// startDistributed runs the platform as processes of cfg.Command in
// checkout mode mode, with their data directories under dir, and logs
// benchAdmin in at the gateway with a client keeping up to idle
// connections. On an error, what was started is stopped and removed.
func startDistributed(ctx context.Context, cfg Distributed, mode, dir string, idle int, logf func(string, ...any)) (_ *distributed, err error) {
	if cfg.PostgresURL == "" || cfg.NATSURL == "" {
		return nil, ErrDistributedSetup
	}
	if cfg.Command == "" {
		if cfg.Command, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("the agora binary to run: %w", err)
		}
	}
	id := rand.Uint64()
	d := &distributed{cfg: cfg, logf: logf, schema: fmt.Sprintf("bench_%016x", id), namespace: fmt.Sprintf("bench%016x", id)}
	// Both reachable, or a clear error before any process starts.
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(pctx, cfg.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL at --postgres: %w", err)
	}
	_ = conn.Close(ctx)
	if d.nc, err = nats.Connect(cfg.NATSURL, nats.Name("agora bench checkout")); err != nil {
		return nil, fmt.Errorf("NATS at --nats: %w", err)
	}
	defer func() {
		if err != nil {
			_ = d.close()
		}
	}()
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	common := []string{"--postgres", cfg.PostgresURL, "--postgres-schema", d.schema, "--nats", cfg.NATSURL, "--nats-namespace", d.namespace,
		"--checkout-mode", mode, "--bootstrap-admin", benchAdmin, "--seed-demo=false", "--rate-limits=false",
		// As the embedded benchmark, which drops the platform's logs:
		// no access log line for every request.
		"--log-level", "warn"}
	if cfg.RedisURL != "" {
		common = append(common, "--redis", cfg.RedisURL)
	}
	logf("distributed: PostgreSQL schemas %s_*, NATS namespace %s; %d processes, one at a time (each applies its migrations)", d.schema, d.namespace, len(distributedProcesses))
	var jwks string
	for _, p := range distributedProcesses {
		args := append([]string{"--only", p.only}, common...)
		if jwks != "" {
			args = append(args, "--jwks-url="+jwks)
		}
		if cfg.ProfileDir != "" {
			args = append(args, "--cpuprofile", filepath.Join(cfg.ProfileDir, p.name+".pprof"))
		}
		start := time.Now()
		pr, err := d.spawn(ctx, p.name, filepath.Join(dir, p.name), args)
		if err != nil {
			return nil, err
		}
		logf("  %-10s pid %d on %s, ready in %.1f s", p.name, pr.cmd.Process.Pid, pr.addr, time.Since(start).Seconds())
		if p.name == "identity" {
			jwks = "http://" + pr.addr + "/.well-known/jwks.json"
		}
	}
	gw := d.procs[len(d.procs)-1]
	if d.c, err = login(ctx, "http://"+gw.addr, idle); err != nil {
		return nil, err
	}
	if err := d.waitRoutes(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// spawn starts process name (agora serve args) with its data in dir and
// its output in dir/agora.log, and waits until it is ready.
func (d *distributed) spawn(ctx context.Context, name, dir string, args []string) (*proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, addr: addr, log: filepath.Join(dir, "agora.log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(d.cfg.Command, append([]string{"serve", "--addr", addr, "--data", dir}, args...)...)
	p.cmd.Env = append(os.Environ(), d.cfg.Env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = ownGroup()
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d.procs = append(d.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(processReady)
	for time.Now().Before(deadline) {
		if res, err := hc.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready (%v); the end of %s:\n%s", name, p.err, p.log, tail(p.log, 10))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%s was not ready in %s; the end of %s:\n%s", name, processReady, p.log, tail(p.log, 10))
}

// waitRoutes waits until the gateway reaches every context the orders
// need: it finds instances in the registry as they register, so a
// process being ready does not yet mean the gateway routes to it.
func (d *distributed) waitRoutes(ctx context.Context) error {
	probes := []string{"/api/v1/products?limit=1", "/api/v1/inventory/bench-probe", "/api/v1/accounts/bench-probe", "/api/v1/orders?limit=1"}
	deadline := time.Now().Add(processReady)
	for {
		var bad []string
		tok, err := d.c.bearer(ctx)
		if err != nil {
			return err
		}
		for _, path := range probes {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.c.base+path, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := d.c.http.Do(req)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", path, err))
				continue
			}
			res.Body.Close()
			if res.StatusCode >= 500 {
				bad = append(bad, fmt.Sprintf("%s: %d", path, res.StatusCode))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway does not reach every context: %s", strings.Join(bad, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *distributed) client() benchClient { return d.c }

// watch subscribes to the ordering context's integration events on the
// bus (core NATS, beside the JetStream stream that stores them): an
// order's end is seen once its terminal event is committed to ordering's
// log in PostgreSQL and relayed, as every other context sees it, at no
// cost to the platform's processes. Both ordering instances may relay an
// event (the broker stores it once, but a plain subscriber sees each
// publication), so an end can come twice.
func (d *distributed) watch(ctx context.Context, ended func(time.Time, []orderEnd)) error {
	for _, subject := range []string{orderingapi.SubjectOrderConfirmed, orderingapi.SubjectOrderCancelled} {
		confirmed := subject == orderingapi.SubjectOrderConfirmed
		sub, err := d.nc.Subscribe(d.namespace+"."+subject, func(m *nats.Msg) {
			now := time.Now()
			var e orderingapi.OrderCancelled // or OrderConfirmed: the same order_id
			if err := json.Unmarshal(m.Data, &e); err != nil || e.OrderID == "" {
				return
			}
			ended(now, []orderEnd{{id: e.OrderID, confirmed: confirmed, reason: e.Reason}})
		})
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", subject, err)
		}
		// A slow benchmark must not lose ends: no limit on what waits.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return err
		}
		d.subs = append(d.subs, sub)
	}
	if err := d.nc.FlushTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	go func() {
		<-ctx.Done()
		for _, s := range d.subs {
			if n, _ := s.Dropped(); n > 0 {
				d.logf("the benchmark's subscription dropped %d order ends", n)
			}
			_ = s.Unsubscribe()
		}
	}()
	return nil
}

// cpu is the processes' CPU and this process's (the clients').
func (d *distributed) cpu() time.Duration {
	sum := cpuTime()
	for _, p := range d.processes() {
		sum += p.cpu
	}
	return sum
}

// memory is the processes' resident memory (and this process's).
func (d *distributed) memory() memorySample {
	sum := rssMB()
	for _, p := range d.procs {
		if mb, ok := procRSSMB(p.cmd.Process.Pid); ok {
			sum += mb
		}
	}
	return memorySample{RSSMB: sum}
}

func (d *distributed) processes() []processCPU {
	out := make([]processCPU, len(d.procs))
	for i, p := range d.procs {
		cpu, ok := procCPU(p.cmd.Process.Pid)
		out[i] = processCPU{name: p.name, pid: p.cmd.Process.Pid, cpu: cpu, ok: ok}
	}
	return out
}

// close stops the processes (SIGTERM, then SIGKILL after 15 s), drops the
// run's PostgreSQL schemas and deletes its NATS streams and buckets.
func (d *distributed) close() error {
	var errs []error
	for _, p := range d.procs {
		select {
		case <-p.done: // before it was asked to
			errs = append(errs, fmt.Errorf("%s exited during the run (%v); the end of %s:\n%s", p.name, p.err, p.log, tail(p.log, 10)))
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	var wg sync.WaitGroup
	for _, p := range d.procs {
		wg.Go(func() {
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				d.logf("%s did not stop in 15 s: killed", p.name)
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		})
	}
	wg.Wait()
	if d.c.http != nil {
		d.c.http.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := postgres.DropSchema(ctx, d.cfg.PostgresURL, d.schema); err != nil {
		errs = append(errs, fmt.Errorf("drop the schemas %s_*: %w", d.schema, err))
	}
	if d.nc != nil {
		if err := deleteNamespace(ctx, d.nc, d.namespace); err != nil {
			errs = append(errs, fmt.Errorf("delete the NATS namespace %s: %w", d.namespace, err))
		}
		d.nc.Close()
	}
	return errors.Join(errs...)
}

// deleteNamespace deletes the streams of NATS namespace ns (named
// "<NS>_<NAME>") and its key-value buckets (streams "KV_<ns>_<name>").
func deleteNamespace(ctx context.Context, nc *nats.Conn, ns string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	names := js.StreamNames(ctx)
	var mine []string
	for name := range names.Name() {
		if strings.HasPrefix(name, strings.ToUpper(ns)+"_") || strings.HasPrefix(name, "KV_"+ns+"_") {
			mine = append(mine, name)
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	var errs []error
	for _, name := range mine {
		if err := js.DeleteStream(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tail is the last n lines of file.
func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(len(lines)-n, 0):], []byte("\n")))
}
