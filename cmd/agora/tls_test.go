package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/tlsconf/tlstest"
	"github.com/agora-commerce/agora/internal/server"
)

// TestTLSFlags: the TLS flags and their environment variables reach the
// server's configuration; a certificate without its key (and the other
// way round), both files and --tls-self-signed, and an unknown
// --tls-plain fail at once; files that cannot be read fail the start,
// naming the file.
func TestTLSFlags(t *testing.T) {
	parse := func(args ...string) (*Main, error) {
		m := NewMain()
		m.Stderr = io.Discard
		return m, m.ParseFlags(append([]string{"serve"}, args...))
	}
	m, err := parse("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem", "--tls-plain", "refuse")
	if err != nil || m.serve.TLSCert != "c.pem" || m.serve.TLSKey != "k.pem" || m.serve.TLSCA != "ca.pem" || m.serve.TLSPlain != server.PlainRefuse {
		t.Fatalf("flags: %v %+v", err, m.serve)
	}
	t.Setenv("AGORA_TLS_SELF_SIGNED", "true")
	t.Setenv("AGORA_TLS_CA", "bundle.pem")
	if m, err := parse(); err != nil || !m.serve.TLSSelfSigned || m.serve.TLSCA != "bundle.pem" || m.serve.TLSPlain != server.PlainRedirect {
		t.Fatalf("environment: %v %+v", err, m.serve)
	}
	t.Setenv("AGORA_TLS_SELF_SIGNED", "")
	t.Setenv("AGORA_TLS_CA", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-self-signed"}, "not both"},
		{[]string{"--tls-self-signed", "--tls-plain", "drop"}, `--tls-plain "drop"`},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}

	// Files that cannot be read: the start fails, naming them.
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.pem")
	unreadable := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(unreadable, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--tls-cert", missing, "--tls-key", missing},
		{"--tls-cert", unreadable, "--tls-key", unreadable},
		{"--tls-self-signed", "--tls-ca", missing},
	} {
		m, err := parse(append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Run(context.Background())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), filepath.Base(args[len(args)-1])) {
			t.Errorf("%v: %v, want an error naming the file", args, err)
		} else {
			t.Log(err)
		}
	}
}

// TestTLSServeSelfSigned boots agora serve --tls-self-signed: the
// greeting names the https URL and the certificate a client must trust,
// and the shop answers there over HTTP/2 to a client trusting it.
func TestTLSServeSelfSigned(t *testing.T) {
	dir := t.TempDir()
	m := NewMain()
	var out syncBuffer
	m.Stdout, m.Stderr = &out, io.Discard
	if err := m.ParseFlags([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--tls-self-signed"}); err != nil {
		t.Fatal(err)
	}
	ready := make(chan *server.Server, 1)
	m.Ready = func(s *server.Server) { ready <- s }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		m.Close()
	}()
	var srv *server.Server
	select {
	case srv = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready in 30s")
	}
	certFile := filepath.Join(dir, "tls", "cert.pem")
	greeting := out.String()
	if !strings.Contains(greeting, "open https://"+srv.Addr()+"/") || !strings.Contains(greeting, "--cacert "+certFile+" https://"+srv.Addr()+"/api/v1/auth/token") {
		t.Fatalf("greeting:\n%s", greeting)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	res, err := hc.Get("https://" + srv.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s %s", res.StatusCode, res.Proto, res.Header.Get("Content-Type"))
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// trustCA makes the tests' HTTP clients (http.Get, http.Post, the
// admin's bearer transport) trust pool's certificates until the test
// ends.
func trustCA(t *testing.T, pool *x509.CertPool) {
	old := http.DefaultTransport
	tr := old.(bearer).next.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	http.DefaultTransport = bearer{tr}
	t.Cleanup(func() { http.DefaultTransport = old })
}

// TestDistributedTLS runs the platform distributed, every process on
// HTTPS with a certificate of the test's CA and trusting that CA
// (--tls-ca) for its calls to the others: the JWKS fetch from identity,
// the gateway's proxying, the BFF's calls. Through the gateway, over
// HTTP/2: a customer registers, logs in, is funded and checks out, the
// order is confirmed, and the BFF's home page has every section.
// Readiness checks are plain HTTP, redirected to https.
func TestDistributedTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eight processes")
	}
	pg, nats := os.Getenv("AGORA_TEST_POSTGRES_URL"), os.Getenv("AGORA_TEST_NATS_URL")
	if pg == "" || nats == "" {
		t.Skip("AGORA_TEST_POSTGRES_URL or AGORA_TEST_NATS_URL not set; skipping the distributed test (.ci/run sets them)")
	}
	certs := tlstest.New(t)
	trustCA(t, certs.Pool)
	base, _, _ := startDistributedWith(t, pg, nats, "orchestration", []string{"--tls-cert", certs.Cert, "--tls-key", certs.Key, "--tls-ca", certs.CA})
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("gateway at %s", base)
	}
	res, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.TLS == nil {
		t.Fatalf("GET /healthz from the gateway: %s, TLS %v", res.Proto, res.TLS != nil)
	}

	waitOK := func(what string, f func() (*http.Response, map[string]any, error)) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, body, err := f()
			if err == nil && res.StatusCode < 300 {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v %v %v", what, res, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	as := func(token, method, path string, body any) (*http.Response, map[string]any, error) {
		var rd io.Reader
		if body != nil {
			rd = strings.NewReader(jsonOf(body))
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		return decode(http.DefaultClient.Do(req))
	}
	prod := waitOK("product", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/products", map[string]any{"sku": fmt.Sprintf("TLS-%d", rand.Uint32()), "name": "T", "price": map[string]any{"amount": 300, "currency": "USD"}})
	})["id"].(string)
	waitOK("restock", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/inventory/"+prod+"/restock", map[string]any{"quantity": 10})
	})
	email := fmt.Sprintf("tls-%d@agora.test", rand.Uint64())
	acct := waitOK("register", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/customers", map[string]any{"email": email, "password": "password-123", "name": "T"})
	})["account_id"].(string)
	token := waitOK("login", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/auth/token", map[string]any{"email": email, "password": "password-123"})
	})["access_token"].(string)
	waitOK("fund", func() (*http.Response, map[string]any, error) {
		return post(base+"/api/v1/accounts/"+acct+"/deposits", map[string]any{"amount": map[string]any{"amount": 10_000, "currency": "USD"}})
	})
	orderID := waitOK("order", func() (*http.Response, map[string]any, error) {
		return as(token, "POST", "/api/v1/orders", map[string]any{"payment_account_id": acct,
			"items":            []any{map[string]any{"product_id": prod, "quantity": 1}},
			"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}})
	})["id"].(string)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, o, err := as(token, "GET", "/api/v1/orders/"+orderID, nil)
		if err == nil && o["status"] == "Confirmed" {
			break
		}
		if time.Now().After(deadline) || o["status"] == "Cancelled" {
			t.Fatalf("order %s: %v %v", orderID, o, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The BFF process calls the others over https, trusting the CA. Its
	// recent orders come from ordering's order list, a projection that may
	// trail the confirmation just seen: wait for the order to appear.
	home := waitOK("BFF home", func() (*http.Response, map[string]any, error) {
		res, body, err := as(token, "GET", "/bff/web/home", nil)
		if d, _ := body["degraded"].([]any); err == nil && len(d) != 0 {
			return res, body, fmt.Errorf("degraded: %v", d)
		}
		if orders, _ := body["recent_orders"].([]any); err == nil && len(orders) == 0 {
			return res, body, fmt.Errorf("no recent orders yet")
		}
		return res, body, err
	})
	if orders, _ := home["recent_orders"].([]any); len(orders) != 1 || orders[0].(map[string]any)["id"] != orderID {
		t.Fatalf("BFF home: %v", home)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// decode reads a JSON object answer.
func decode(res *http.Response, err error) (*http.Response, map[string]any, error) {
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	err = json.NewDecoder(res.Body).Decode(&out)
	return res, out, err
}
