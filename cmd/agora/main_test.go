package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/server"
)

// TestMain lets the test binary act as the agora command when asked,
// so that tests can run it as a real process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("AGORA_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	if addr := os.Getenv("AGORA_TEST_RUN_NATS"); addr != "" {
		runNATS(addr, os.Getenv("AGORA_TEST_NATS_DIR"))
		return
	}
	// Every request of these tests carries the bootstrapped admin's token.
	http.DefaultTransport = bearer{http.DefaultTransport}
	os.Exit(m.Run())
}

// The admin the tests' processes bootstrap, and its current token.
const testAdmin = "admin@agora.test:admin-password-1"

var adminToken atomic.Value // string

// bearer adds the admin's token to requests that carry none.
type bearer struct{ next http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if tok, _ := adminToken.Load().(string); tok != "" && r.Header.Get("Authorization") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return b.next.RoundTrip(r)
}

// login makes the admin's token the one requests carry.
func login(t *testing.T, base string) {
	t.Helper()
	email, password, _ := strings.Cut(testAdmin, ":")
	res, body, err := post(base+"/api/v1/auth/token", map[string]any{"email": email, "password": password})
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v %v", res, body, err)
	}
	adminToken.Store(body["access_token"].(string))
}

func TestServeBootsOnPortZero(t *testing.T) {
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	ready := make(chan *server.Server, 1)
	m.Ready = func(s *server.Server) { ready <- s }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var srv *server.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready in 10s")
	}
	res, err := http.Get("http://" + srv.Addr() + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"bench"}, {"serve", "--log-level", "loud"},
		{"serve", "--payments-partitions", "0"}, {"serve", "--payments-partitions", "65"}, {"serve", "--payments-partitions", "four"},
		{"payments"}, {"payments", "reshard"}, {"payments", "reshard", "--to", "0"}, {"bench", "transfers", "--partitions", "1,x"},
		{"migrate", "split", "--payments-partitions", "100"}} {
		m := NewMain()
		m.Stderr = io.Discard
		if err := m.ParseFlags(args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs the agora command (this test binary) as a child
// process, waits until it is ready and logs the admin in there.
func startProcess(t *testing.T, addr, dir string, args ...string) *exec.Cmd {
	cmd := spawn(t, addr, dir, args...)
	login(t, "http://"+addr)
	return cmd
}

// spawn runs the agora command as a child process and waits until it is
// ready.
func spawn(t *testing.T, addr, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--addr", addr, "--data", dir,
		"--bootstrap-admin", testAdmin, "--seed-demo=false", "--rate-limits=false"}, args...)...)
	cmd.Env = append(os.Environ(), "AGORA_TEST_RUN_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A test that fails before it stops its process must not leave it
	// running on the machine.
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	// The last lines it logged, to say why if it never becomes ready.
	var mu sync.Mutex
	var last []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if os.Getenv("AGORA_TEST_LOG") != "" {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
			mu.Lock()
			if last = append(last, sc.Text()); len(last) > 10 {
				last = last[1:]
			}
			mu.Unlock()
		}
	}()
	// A bound on a stuck start, not a measure: ten processes starting on
	// a loaded 2-core machine can take a while.
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return cmd
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("agora %v did not become ready; its last lines:\n%s", args, strings.Join(last, "\n"))
	return nil
}

func post(url string, body any) (*http.Response, map[string]any, error) {
	b, _ := json.Marshal(body)
	res, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	err = json.NewDecoder(res.Body).Decode(&out)
	return res, out, err
}

// TestKill9KeepsAcknowledgedWrites deposits from several clients, kills
// the process with SIGKILL mid-stream, restarts it on the same data
// directory and checks that every acknowledged deposit is there.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	cmd := startProcess(t, addr, dir)
	base := "http://" + addr
	res, acc, err := post(base+"/api/v1/accounts", map[string]any{"owner_id": "kim", "currency": "USD"})
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("open: %v %v", res, err)
	}
	id := acc["id"].(string)
	var acked atomic.Int64
	var ackedSum atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, _, err := post(base+"/api/v1/accounts/"+id+"/deposits", map[string]any{"amount": map[string]any{"amount": i, "currency": "USD"}})
				if err != nil {
					return // the process died: this deposit was never acknowledged
				}
				if res.StatusCode == 200 {
					acked.Add(1)
					ackedSum.Add(int64(i))
				}
			}
		}()
	}
	for acked.Load() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()
	n, sum := acked.Load(), ackedSum.Load()

	cmd = startProcess(t, addr, dir)
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	// Read from the event stream (the source of truth) and the read model.
	var events, total int64
	cursor := ""
	for {
		r, err := http.Get(base + "/api/v1/accounts/" + id + "/events?limit=500" + cursor)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Items []struct {
				Type     string          `json:"type"`
				Position uint64          `json:"position"`
				Data     json.RawMessage `json:"data"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		json.NewDecoder(r.Body).Decode(&page)
		r.Body.Close()
		for _, it := range page.Items {
			if it.Type == "payments.MoneyDeposited" {
				var d struct{ Amount struct{ Amount int64 } }
				json.Unmarshal(it.Data, &d)
				events++
				total += d.Amount.Amount
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	// A deposit in flight at the kill may have committed without its
	// acknowledgement reaching the client: more is fine, less is loss.
	if events < n || total < sum {
		t.Fatalf("after kill -9: %d deposits summing to %d stored; %d summing to %d were acknowledged", events, total, n, sum)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/accounts/"+id, nil)
	req.Header.Set("Agora-Min-Position", fmt.Sprint(events+1))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.NewDecoder(r.Body).Decode(&got)
	r.Body.Close()
	if bal := int64(got["balance"].(map[string]any)["amount"].(float64)); bal != total {
		t.Fatalf("read model balance %d after restart, events sum to %d", bal, total)
	}
	t.Logf("killed after %d acknowledged deposits; %d stored after restart", n, events)
}
