package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/agora-commerce/agora/eventstore/postgres"
	"github.com/agora-commerce/agora/internal/testenv"
	"github.com/agora-commerce/agora/internal/testenv/faults"
)

// faultSeed is the seed of a fault test: AGORA_FAULT_SEED to rerun one,
// else a new one. The test prints it.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("AGORA_FAULT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AGORA_FAULT_SEED=%q: %v", s, err)
		}
		return n
	}
	return rand.Uint64() >> 1
}

// faultDuration is how long a fault test's load runs: short by default
// (CI), long with AGORA_FAULTS=long.
func faultDuration(short, long time.Duration) time.Duration {
	if os.Getenv("AGORA_FAULTS") == "long" {
		return long
	}
	return short
}

// An account operation of the linearizability test.
type accountOp struct {
	Account string
	Kind    string // deposit, withdraw, read
	Amount  int64
}

// Outcomes of an account operation.
const (
	outcomeOK      = "ok"
	outcomeRefused = "refused" // a withdrawal refused for funds
	outcomeUnknown = "unknown" // no answer: it may or may not have happened
)

type accountResult struct {
	Outcome string
	Balance int64 // after the operation (ok only)
}

// accountModel is one account's balance, the operations' specification:
// a deposit adds, a withdrawal subtracts unless the balance is short (then
// it is refused and changes nothing), a read returns the balance. An
// operation without an answer may have happened or not.
var accountModel = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			a := op.Input.(accountOp).Account
			if _, ok := by[a]; !ok {
				keys = append(keys, a)
			}
			by[a] = append(by[a], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() []any { return []any{int64(linInitial)} },
	Step: func(state, input, output any) []any {
		bal, in, out := state.(int64), input.(accountOp), output.(accountResult)
		var next []any
		switch in.Kind {
		case "read":
			if out.Balance == bal {
				next = append(next, bal)
			}
		case "deposit":
			switch out.Outcome {
			case outcomeOK:
				if out.Balance == bal+in.Amount {
					next = append(next, bal+in.Amount)
				}
			case outcomeUnknown:
				next = append(next, bal, bal+in.Amount)
			}
		case "withdraw":
			switch out.Outcome {
			case outcomeOK:
				if bal >= in.Amount && out.Balance == bal-in.Amount {
					next = append(next, bal-in.Amount)
				}
			case outcomeRefused:
				if bal < in.Amount {
					next = append(next, bal)
				}
			case outcomeUnknown:
				next = append(next, bal)
				if bal >= in.Amount {
					next = append(next, bal-in.Amount)
				}
			}
		}
		return next
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(accountOp), output.(accountResult)
		switch {
		case in.Kind == "read":
			return fmt.Sprintf("read → %d", out.Balance)
		case out.Outcome == outcomeOK:
			return fmt.Sprintf("%s %d → %d", in.Kind, in.Amount, out.Balance)
		default:
			return fmt.Sprintf("%s %d → %s", in.Kind, in.Amount, out.Outcome)
		}
	},
	DescribeState: func(state any) string { return strconv.FormatInt(state.(int64), 10) },
}

const (
	linAccounts = 8
	linClients  = 16
	linInitial  = 1_000
)

// TestAccountsAreLinearizable: 16 clients deposit into, withdraw from and
// read 8 accounts while the process is killed with SIGKILL and restarted,
// and PostgreSQL (behind Toxiproxy) is blackholed, in turn. Each account's
// history — operations without an answer recorded as of unknown outcome —
// must be linearizable against a plain balance (porcupine). A history
// that is not is drawn to an HTML file that the test names and keeps.
// AGORA_FAULT_SEED reruns a seed; AGORA_FAULTS=long runs three minutes.
func TestAccountsAreLinearizable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	pg := testenv.PostgresURL(t)
	seed := faultSeed(t)
	dur := faultDuration(20*time.Second, 3*time.Minute)
	t.Logf("seed %d (AGORA_FAULT_SEED=%d reruns it), %v of load", seed, seed, dur)
	rng := rand.New(rand.NewPCG(seed, 1))

	u, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	proxy := faults.New(t, "postgres", u.Host)
	schema := fmt.Sprintf("lin_%d", seed%1_000_000_007)
	t.Cleanup(func() { _ = postgres.DropSchema(context.Background(), pg, schema) })
	dir, addr := t.TempDir(), freeAddr(t)
	args := []string{"--postgres", proxy.Rewrite(pg, u.Host), "--postgres-schema", schema}
	var (
		mu  sync.Mutex
		cmd = startProcess(t, addr, dir, args...)
	)
	base := "http://" + addr
	accounts := make([]string, linAccounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("lin-%d-%d", seed%100_000, i)
		if res, body, err := post(base+"/api/v1/accounts", map[string]any{"id": accounts[i], "owner_id": accounts[i], "currency": "USD",
			"initial_balance": map[string]any{"amount": linInitial, "currency": "USD"}}); err != nil || res.StatusCode != http.StatusCreated {
			t.Fatalf("open: %v %v %v", res, body, err)
		}
	}

	start := time.Now()
	now := func() int64 { return time.Since(start).Nanoseconds() }
	var (
		hmu     sync.Mutex
		history []porcupine.Operation
		counts  = map[string]int{}
	)
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	for c := range linClients {
		crng := rand.New(rand.NewPCG(seed, uint64(c)+2))
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 15 * time.Second}
			for ctx.Err() == nil {
				in := accountOp{Account: accounts[crng.IntN(linAccounts)], Amount: 1 + crng.Int64N(300)}
				switch crng.IntN(3) {
				case 0:
					in.Kind = "deposit"
				case 1:
					in.Kind = "withdraw"
				default:
					in.Kind, in.Amount = "read", 0
				}
				call := now()
				out, sent := doAccountOp(client, base, in)
				ret := now()
				if !sent { // refused at connect (the process is restarting): it never happened
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if out.Outcome == outcomeUnknown {
					if in.Kind == "read" {
						time.Sleep(20 * time.Millisecond)
						continue // a read without an answer tells nothing
					}
					ret = math.MaxInt64
				}
				hmu.Lock()
				history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				counts[in.Kind+" "+out.Outcome]++
				hmu.Unlock()
				if out.Outcome == outcomeUnknown {
					time.Sleep(50 * time.Millisecond) // a client backs off after a failure
				}
			}
		}()
	}

	// The faults, in turn, until the load ends.
	var kills, blackouts int
	var killedAt []int64
	var recovery []time.Duration
	okOps := func() int {
		hmu.Lock()
		defer hmu.Unlock()
		return counts["deposit ok"] + counts["withdraw ok"] + counts["read ok"] + counts["withdraw refused"]
	}
	recovered := func(from time.Time) {
		n := okOps()
		for okOps() == n && time.Since(from) < 60*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		recovery = append(recovery, time.Since(from))
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(1500+rng.IntN(2500)) * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
		if i%2 == 0 {
			mu.Lock()
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			killedAt = append(killedAt, now())
			kills++
			cmd = spawn(t, addr, dir, args...)
			mu.Unlock()
			recovered(time.Now())
		} else {
			if err := proxy.Blackhole(); err != nil {
				t.Fatal(err)
			}
			blackouts++
			time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
			proxy.Heal()
			recovered(time.Now())
		}
	}
	wg.Wait()
	proxy.Heal()

	hmu.Lock()
	defer hmu.Unlock()
	unknown := counts["deposit unknown"] + counts["withdraw unknown"]
	t.Logf("%d operations (%v), %d kill -9 and %d PostgreSQL blackouts; %d of unknown outcome (%v); recovery after each fault %v",
		len(history), counts, kills, blackouts, unknown, unknownWhy, recovery)
	if counts["deposit ok"] == 0 || counts["withdraw ok"] == 0 || counts["read ok"] == 0 || kills == 0 || blackouts == 0 {
		t.Fatalf("the run did too little to tell anything: %v, %d kills, %d blackouts", counts, kills, blackouts)
	}
	// An operation without an answer took effect, if at all, before the
	// process that had it died: its window closes at the next kill.
	for i, op := range history {
		if op.Return != math.MaxInt64 {
			continue
		}
		for _, k := range killedAt {
			if k > op.Call {
				history[i].Return = k
				break
			}
		}
	}
	model := accountModel.ToModel()
	res, info := porcupine.CheckOperationsVerbose(model, history, time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("porcupine: every account's history of %d operations is linearizable", len(history))
	case porcupine.Unknown:
		t.Fatalf("porcupine could not decide within its time limit (seed %d)", seed)
	default:
		out, err := os.MkdirTemp("", "agora-porcupine-")
		if err == nil {
			path := filepath.Join(out, "history.html")
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				t.Errorf("the history is drawn in %s", path)
			}
		}
		t.Fatalf("an account's history is not linearizable (seed %d)", seed)
	}
	if n := unexpected.Load(); n > 0 {
		t.Fatalf("%d answers were neither a success, a refusal for funds nor a 5xx", n)
	}
	// And the auditor: every account's read model is the fold of its
	// stream, money adds up (the embedded NATS is the process's: its
	// consumers are not checked from here).
	code, out, errOut := runAudit(t, "--postgres", pg, "--postgres-schema", schema, "--data", dir, "--settle", "30s")
	if code != 0 {
		t.Fatalf("agora audit: exit %d\n%s\n%s", code, out, errOut)
	}
}

// doAccountOp runs in against the gateway and classifies the answer;
// sent is false when the connection was refused (nothing was sent).
func doAccountOp(client *http.Client, base string, in accountOp) (_ accountResult, sent bool) {
	var req *http.Request
	switch in.Kind {
	case "read":
		req, _ = http.NewRequest("GET", base+"/api/v1/accounts/"+in.Account, nil)
	default:
		path := "/deposits"
		if in.Kind == "withdraw" {
			path = "/withdrawals"
		}
		b, _ := json.Marshal(map[string]any{"amount": map[string]any{"amount": in.Amount, "currency": "USD"}})
		req, _ = http.NewRequest("POST", base+"/api/v1/accounts/"+in.Account+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return accountResult{Outcome: outcomeUnknown}, false
		}
		unknownWhy.Add("no answer")
		return accountResult{Outcome: outcomeUnknown}, true
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return accountResult{Outcome: outcomeUnknown}, true
	}
	var body struct {
		Reason  string `json:"reason"`
		Balance struct {
			Amount int64 `json:"amount"`
		} `json:"balance"`
	}
	_ = json.Unmarshal(raw, &body)
	switch {
	case res.StatusCode == http.StatusOK:
		return accountResult{Outcome: outcomeOK, Balance: body.Balance.Amount}, true
	case res.StatusCode == http.StatusConflict && body.Reason == "insufficient_funds":
		return accountResult{Outcome: outcomeRefused}, true
	case res.StatusCode == http.StatusServiceUnavailable && (body.Reason == "circuit_open" || body.Reason == "bulkhead_full"):
		return accountResult{Outcome: outcomeUnknown}, false // the gateway refused it unsent
	case res.StatusCode >= 500:
		unknownWhy.Add(strconv.Itoa(res.StatusCode) + " " + body.Reason)
		return accountResult{Outcome: outcomeUnknown}, true
	}
	// Anything else is the test's mistake or a defect: record it as
	// unknown, but say so.
	fmt.Fprintf(os.Stderr, "linearizability test: unexpected answer %d %s to %+v\n", res.StatusCode, raw, in)
	unexpected.Add(1)
	return accountResult{Outcome: outcomeUnknown}, true
}

var unexpected atomic.Int64

// unknownWhy counts why operations ended without an answer.
var unknownWhy = &tally{m: map[string]int{}}

type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (t *tally) Add(k string) {
	t.mu.Lock()
	t.m[k]++
	t.mu.Unlock()
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprint(t.m)
}
