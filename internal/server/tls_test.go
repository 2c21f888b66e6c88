package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/tlsconf/tlstest"
	"github.com/agora-commerce/agora/internal/server"
)

// startTLS starts an embedded server with edit applied to its
// configuration, stopped when the test ends.
func startTLS(t *testing.T, edit func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: testLogger()}
	edit(&cfg)
	srv, stop, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return srv
}

// httpsClient trusts roots alone and speaks HTTP/2 (or HTTP/1.1).
func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
}

// noRedirects is a plain HTTP client that shows a redirect rather than
// follow it.
var noRedirects = &http.Client{Timeout: 10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// TestTLSServesHTTPSWithHTTP2 serves the embedded platform with a
// certificate a test CA signed: a client trusting the CA gets /healthz
// and logs the demo customer in over HTTP/2 with TLS 1.2 or later, and
// reads with the token, checks out and follows the order's event stream
// to its confirmation, and a browser session's cookies are Secure; a
// client that speaks at most TLS 1.1 is refused
// in the handshake; plain HTTP to the port is redirected to https with
// its method, path and query, and followed there.
func TestTLSServesHTTPSWithHTTP2(t *testing.T) {
	certs := tlstest.New(t)
	srv := startTLS(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey, c.SeedDemo = certs.Cert, certs.Key, true
	})
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("URL %q, want https://", srv.URL())
	}
	hc := httpsClient(certs.Pool)
	res, err := hc.Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || res.TLS == nil || res.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("GET /healthz: %d %s, TLS %+v", res.StatusCode, res.Proto, res.TLS)
	}

	d, ok := srv.Demo()
	if !ok {
		t.Fatal("no demo seeded")
	}
	body, _ := json.Marshal(map[string]string{"email": d.CustomerEmail, "password": d.CustomerPassword})
	res, err = hc.Post(srv.URL()+"/api/v1/auth/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || tok.AccessToken == "" {
		t.Fatalf("login: %d %s %v", res.StatusCode, res.Proto, err)
	}
	req, _ := http.NewRequest("GET", srv.URL()+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	res, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	me, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || !strings.Contains(string(me), d.CustomerEmail) {
		t.Fatalf("GET /api/v1/me: %d %s %s", res.StatusCode, res.Proto, me)
	}

	// A checkout, followed live: the order's event stream, proxied from
	// ordering, flows over HTTP/2 until the order is confirmed.
	var meBody struct {
		AccountID string `json:"account_id"`
	}
	if err := json.Unmarshal(me, &meBody); err != nil || meBody.AccountID == "" {
		t.Fatalf("me: %s %v", me, err)
	}
	call := func(method, path string, body any) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL()+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	var products struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	res = call("GET", "/api/v1/products?q=mug", nil)
	_ = json.NewDecoder(res.Body).Decode(&products)
	res.Body.Close()
	if len(products.Items) == 0 {
		t.Fatal("no mug in the demo catalog")
	}
	var order struct {
		ID string `json:"id"`
	}
	res = call("POST", "/api/v1/orders", map[string]any{"payment_account_id": meBody.AccountID,
		"items":            []any{map[string]any{"product_id": products.Items[0].ID, "quantity": 1}},
		"shipping_address": map[string]any{"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}})
	_ = json.NewDecoder(res.Body).Decode(&order)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || order.ID == "" {
		t.Fatalf("order: %d", res.StatusCode)
	}
	res = call("GET", "/api/v1/orders/"+order.ID+"/updates", nil)
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("updates: %d %s %v", res.StatusCode, res.Proto, res.Header)
	}
	confirmed := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"status":"Confirmed"`) {
				confirmed <- true
				return
			}
		}
		confirmed <- false
	}()
	select {
	case ok := <-confirmed:
		if !ok {
			t.Fatal("the order's stream ended before it was confirmed")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the order was not confirmed on its stream in 20 s")
	}
	res.Body.Close()

	// A browser session's cookies are Secure under TLS.
	res, err = hc.Post(srv.URL()+"/api/v1/auth/session", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || len(res.Cookies()) == 0 {
		t.Fatalf("session: %d %v", res.StatusCode, res.Header)
	}
	for _, c := range res.Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s is not Secure over TLS", c.Name)
		}
	}

	// TLS 1.1 and older are refused by the server (the client would
	// speak them).
	conn, err := tls.Dial("tcp", srv.Addr(), &tls.Config{RootCAs: certs.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1 handshake: %v, want a protocol version alert", err)
	}

	// Plain HTTP to the TLS port: 308 to the same URL over https.
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, "http://"+srv.Addr()+"/api/v1/products?q=mug", strings.NewReader("{}"))
		res, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if want := "https://" + srv.Addr() + "/api/v1/products?q=mug"; res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != want {
			t.Fatalf("plain %s: %d Location %q, want 308 %q", method, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
	res, err = hc.Get("http://" + srv.Addr() + "/healthz") // followed to https
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Scheme != "https" {
		t.Fatalf("plain GET /healthz, followed: %d at %s", res.StatusCode, res.Request.URL)
	}
}

// TestTLSPlainRefused answers plain HTTP on the TLS port with a 400
// problem naming the https URL when told to refuse it, and still serves
// HTTPS.
func TestTLSPlainRefused(t *testing.T) {
	certs := tlstest.New(t)
	srv := startTLS(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey, c.TLSPlain = certs.Cert, certs.Key, server.PlainRefuse
	})
	res, err := noRedirects.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(body), "https_required") || !strings.Contains(string(body), "https://"+srv.Addr()+"/healthz") {
		t.Fatalf("plain GET: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	res, err = httpsClient(certs.Pool).Get(srv.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %d", res.StatusCode)
	}
}

// TestTLSSelfSignedKeptInDataDir starts with a self-signed development
// certificate: the first start makes it in <data>/tls (the key readable
// by its owner alone), a client trusting that certificate gets /healthz
// over HTTP/2, and a second start on the same data directory serves the
// same certificate.
func TestTLSSelfSignedKeptInDataDir(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	var first []byte
	for start := range 2 {
		cfg := server.Config{Addr: "127.0.0.1:0", DataDir: dir, Logger: testLogger(), TLSSelfSigned: true}
		srv, stop, err := server.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := os.ReadFile(certFile)
		if err != nil {
			stop()
			t.Fatal(err)
		}
		if srv.DevCertFile() != certFile {
			t.Errorf("DevCertFile %q, want %q", srv.DevCertFile(), certFile)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		res, err := httpsClient(pool).Get(srv.URL() + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		stop()
		if err != nil || res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
			t.Fatalf("start %d: GET /healthz: %v %v", start+1, res, err)
		}
		if start == 0 {
			first = pem
			if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v %v", fi, err)
			}
			continue
		}
		if !bytes.Equal(pem, first) {
			t.Fatal("the second start made another certificate")
		}
	}
}

// TestTLSConfigErrors: a certificate without its key (or a key without
// its certificate), both files and a self-signed certificate, an unknown
// answer to plain HTTP and files that cannot be read are refused with an
// error that names the problem.
func TestTLSConfigErrors(t *testing.T) {
	certs := tlstest.New(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"cert alone", server.Config{TLSCert: certs.Cert}, "--tls-cert and --tls-key go together"},
		{"key alone", server.Config{TLSKey: certs.Key}, "--tls-cert and --tls-key go together"},
		{"both ways", server.Config{TLSCert: certs.Cert, TLSKey: certs.Key, TLSSelfSigned: true}, "not both"},
		{"plain", server.Config{TLSCert: certs.Cert, TLSKey: certs.Key, TLSPlain: "ignore"}, `--tls-plain "ignore"`},
		{"unreadable cert", server.Config{TLSCert: missing, TLSKey: certs.Key}, "missing.pem"},
		{"key of another", server.Config{TLSCert: certs.Cert, TLSKey: certs.CA}, "key"},
		{"unreadable CA", server.Config{TLSCA: missing}, "--tls-ca"},
		{"CA without certificates", server.Config{TLSCA: certs.Key}, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Addr, cfg.DataDir, cfg.Logger = "127.0.0.1:0", t.TempDir(), testLogger()
			srv, err := server.Open(context.Background(), cfg)
			if err == nil {
				srv.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}
