package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/load"
	"github.com/agora-commerce/agora/internal/server"
)

// startEmbedded starts the platform in process with the demo seed, rate
// limits off, and returns its URL.
func startEmbedded(t *testing.T) string {
	t.Helper()
	srv, stop, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(),
		SeedDemo: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv.URL()
}

// runLoadCommand runs `agora load` (this test binary) as its own process
// and returns its exit status, stdout and stderr.
func runLoadCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"load"}, args...)...)
	cmd.Env = append(os.Environ(), "AGORA_TEST_RUN_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// checkReport asserts what every healthy run shows: requests in every
// scenario, no errors, every order and transfer followed to its end.
func checkReport(t *testing.T, rep load.Report) {
	t.Helper()
	for _, s := range rep.Scenarios {
		if s.Requests == 0 || s.OK == 0 {
			t.Errorf("scenario %s: %+v", s.Name, s)
		}
	}
	if rep.Total.Errors != 0 {
		t.Errorf("%d errors: %+v", rep.Total.Errors, rep.ErrorSamples)
	}
	o := rep.Orders
	var cancelled uint64
	for _, n := range o.Cancelled {
		cancelled += n
	}
	if o.Placed == 0 || o.Confirmed == 0 || o.Unfinished != 0 || o.Confirmed+cancelled != o.Placed {
		t.Errorf("orders: %+v", o)
	}
	tr := rep.Transfers
	if tr.Started == 0 || tr.Completed == 0 || tr.Unfinished != 0 || tr.Completed+tr.Failed != tr.Started {
		t.Errorf("transfers: %+v", tr)
	}
}

// TestLoadEmbedded runs `agora load` for two seconds with three users
// against the platform started in process: every scenario runs, nothing
// fails, orders end Confirmed or Cancelled, and the orders and transfers
// made over the balance are refused as expected.
func TestLoadEmbedded(t *testing.T) {
	base := startEmbedded(t)
	m := NewMain()
	var stdout, stderr bytes.Buffer
	m.Stdout, m.Stderr = &stdout, &stderr
	if err := m.ParseFlags([]string{"load", "--users", "3", "--duration", "2s", "--seed", "42", "--refusals", "0.3",
		"--interval", "500ms", base, "--json"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var rep load.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	checkReport(t, rep)
	if rep.Users != 3 || rep.Seed != 42 || rep.Interrupted || rep.Mix["browse"] != 40 {
		t.Errorf("report: %+v", rep)
	}
	if rep.Scenarios[2].Name != load.Order || rep.Scenarios[2].ExpectedRefusals == 0 || rep.Orders.Cancelled["insufficient_funds"] == 0 {
		t.Errorf("no order over the balance was refused: %+v %+v", rep.Scenarios[2], rep.Orders)
	}
	if rep.Scenarios[4].ExpectedRefusals == 0 || rep.Transfers.Failed == 0 {
		t.Errorf("no transfer over the balance was refused: %+v %+v", rep.Scenarios[4], rep.Transfers)
	}
	// Not a terminal: plain progress lines.
	if !strings.Contains(stderr.String(), "req/s") || !strings.Contains(stderr.String(), "p99") {
		t.Errorf("no progress lines:\n%s", stderr.String())
	}
}

// TestLoadMaxErrors: errors forced by a proxy that fails every product
// page make `agora load --max-errors 0` exit with status 1, still
// printing the table; a higher limit lets the same run pass. A URL that
// refuses connections, a bad mix and a missing URL are errors that say
// what is wrong.
func TestLoadMaxErrors(t *testing.T) {
	target, _ := url.Parse(startEmbedded(t))
	proxy := httputil.NewSingleHostReverseProxy(target)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/products/") {
			http.Error(w, "broken on purpose", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer broken.Close()

	code, out, errOut := runLoadCommand(t, "--users", "2", "--requests", "40", "--mix", "product=1,browse=1", "--max-errors", "0", broken.URL)
	if code != 1 || !strings.Contains(errOut, "too many errors") || !strings.Contains(out, "GET /api/v1/products/{id}: 502 broken on purpose") {
		t.Fatalf("--max-errors 0: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runLoadCommand(t, "--users", "2", "--requests", "40", "--mix", "product=1,browse=1", "--max-errors", "1000", "--json", broken.URL)
	var rep load.Report
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Total.Errors == 0 || rep.Scenarios[0].Errors != 0 {
		t.Fatalf("--max-errors 1000: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}

	refusing := "http://" + freeAddr(t)
	if code, _, errOut = runLoadCommand(t, "--requests", "10", refusing); code != 1 || !strings.Contains(errOut, "reading the catalog") ||
		!strings.Contains(errOut, "connection refused") {
		t.Fatalf("a refusing URL: exit %d\n%s", code, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mix", "browse=10,checkout=5", refusing}, `unknown scenario "checkout"`},
		{[]string{"--mix", "browse=-1", refusing}, "weight -1 is negative"},
		{[]string{"--users", "2"}, "want one URL"},
		{[]string{"--duration", "5s", "--requests", "9", refusing}, "not both"},
	} {
		m := NewMain()
		m.Stderr = io.Discard
		if err := m.ParseFlags(append([]string{"load"}, c.args...)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestLoadFundingRefused: without an admin's login the transfer scenario
// cannot have its second accounts, and the error says what is missing.
func TestLoadFundingRefused(t *testing.T) {
	base := startEmbedded(t)
	code, _, errOut := runLoadCommand(t, "--requests", "10", "--admin-password", "wrong", base)
	if code != 1 || !strings.Contains(errOut, "only an admin or merchant") || !strings.Contains(errOut, "--admin-password") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if code, out, errOut := runLoadCommand(t, "--requests", "30", "--users", "1", "--admin-password", "wrong", "--mix", "order=1,check=1", base); code != 0 ||
		!strings.Contains(out, "orders:") {
		t.Fatalf("without transfers: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestLoadSmoke is CI's smoke of the load generator: `agora serve` as
// it ships (demo seed, rate limits on) in its own process, and `agora
// load` against it in another, 10 s under CI, 3 s otherwise. No timing
// thresholds: it must run every scenario without an error.
func TestLoadSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	duration := "3s"
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		duration = "10s"
	}
	dir, addr := t.TempDir(), freeAddr(t)
	serve := spawn(t, addr, dir, "--seed-demo=true", "--rate-limits=true")
	// Four users: their registrations and logins fit in the auth
	// limit's burst.
	code, out, errOut := runLoadCommand(t, "--users", "4", "--duration", duration, "--json", "http://"+addr)
	if code != 0 {
		t.Fatalf("agora load: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep load.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	checkReport(t, rep)
	t.Logf("%d requests, %.0f req/s, %d 429s, p99 %.1f ms; orders %+v", rep.Total.Requests, rep.Total.RequestsPerSec,
		rep.Total.Throttled, rep.Total.P99Ms, rep.Orders)
	_ = serve.Process.Signal(os.Interrupt)
	_ = serve.Wait()
}
