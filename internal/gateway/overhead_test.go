package gateway_test

import (
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/agora-commerce/agora/internal/cputime"
	"github.com/agora-commerce/agora/internal/gateway"
	"github.com/agora-commerce/agora/internal/gateway/ratelimit"
	"github.com/agora-commerce/agora/internal/gateway/registry"
	"github.com/agora-commerce/agora/internal/gateway/routes"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/telemetry"
)

// stubTransport answers every request at once, in memory: what is left
// to measure is the proxy's own work.
type stubTransport struct{}

func (stubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(strings.NewReader(`{"id":"p1","name":"x"}`)),
		ContentLength: 22, Request: r, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// benchGateway is a gateway as agora bench gateway runs it — the default
// table with the public limits out of reach (every request counted, none
// refused), tokens, validation — in front of upstream for every cluster,
// with transport (nil: the default), and a customer's token.
func benchGateway(b testing.TB, upstream string, transport http.RoundTripper) (*gateway.Gateway, string) {
	b.Helper()
	reg := registry.NewStatic()
	for name := range routes.Default().Clusters {
		if err := reg.Register(name, registry.Instance{ID: name + "-0", URL: upstream, Weight: 1}); err != nil {
			b.Fatal(err)
		}
	}
	_, key, _ := ed25519.GenerateKey(nil)
	signer := auth.NewSigner(key, auth.Options{})
	token, err := signer.Issue(auth.Claims{Tenant: "demo", Roles: []string{auth.RoleCustomer},
		RegisteredClaims: jwt.RegisteredClaims{Subject: "c1"}}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	table, err := routes.Parse([]byte(strings.Replace(string(routes.DefaultYAML()), "public:\n    client: {rate: 1200, period: 1m, burst: 200}",
		"public:\n    client: {rate: 1000000000, period: 1m, burst: 1000000000}", 1)))
	if err != nil {
		b.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Routes: table, Registry: reg, Verifier: auth.NewVerifier(signer.Keys(), auth.Options{}),
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}), Validate: true, Transport: transport})
	if err != nil {
		b.Fatal(err)
	}
	return gw, token
}

// BenchmarkOverhead compares, per request and without a network, an
// authenticated, rate-limited, validated GET /api/v1/products/{id}
// through the gateway with the same GET through a plain
// httputil.ReverseProxy: the difference is what the gateway adds.
func BenchmarkOverhead(b *testing.B) {
	gw, token := benchGateway(b, "http://127.0.0.1:1", stubTransport{})
	plain := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "127.0.0.1:1"})
	plain.Transport = stubTransport{}
	pooled := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "127.0.0.1:1"})
	pooled.Transport, pooled.BufferPool = stubTransport{}, &pool{sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
	// As agora serve runs it (server.Open): the access log (off, as in
	// agora bench gateway) and metrics around the gateway, which gives
	// request IDs and spans itself.
	served := httpapi.AccessLog(slog.New(slog.DiscardHandler), telemetry.New().HTTP(gw))
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"gateway", gw}, {"gateway-as-served", served}, {"plain", plain}, {"plain-pooled-buffers", pooled}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "/api/v1/products/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b", nil)
					req.Header.Set("Authorization", "Bearer "+token)
					rec := httptest.NewRecorder()
					tc.h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}

type pool struct{ p sync.Pool }

func (b *pool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *pool) Put(p []byte) { b.p.Put(&p) }

// BenchmarkOverheadTCP is BenchmarkOverhead over loopback TCP, with a
// real upstream: the same request through the gateway, through a plain
// httputil.ReverseProxy, and at the upstream directly.
func BenchmarkOverheadTCP(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"p1","name":"x"}`))
	}))
	defer upstream.Close()
	gw, token := benchGateway(b, upstream.URL, nil)
	u, _ := url.Parse(upstream.URL)
	plain := httputil.NewSingleHostReverseProxy(u)
	plain.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	gs, ps := httptest.NewServer(gw), httptest.NewServer(plain)
	defer gs.Close()
	defer ps.Close()
	// As agora serve runs it: access log (off), metrics, server timeouts.
	served := httptest.NewUnstartedServer(httpapi.AccessLog(slog.New(slog.DiscardHandler), telemetry.New().HTTP(gw)))
	served.Config.ReadHeaderTimeout, served.Config.ReadTimeout, served.Config.WriteTimeout = 10*time.Second, 30*time.Second, 30*time.Second
	served.Start()
	defer served.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	for _, tc := range []struct{ name, url string }{{"gateway", gs.URL}, {"gateway-as-served", served.URL}, {"plain", ps.URL}, {"direct", upstream.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			defer reportCPU(b)()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, tc.url+"/api/v1/products/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b", nil)
					req.Header.Set("Authorization", "Bearer "+token)
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Fatalf("status %d", res.StatusCode)
					}
				}
			})
		})
	}
}

// reportCPU adds the process's CPU time per operation (user and system,
// every goroutine's) to b's report when the returned function is called:
// on a machine shared with other work, a steadier measure than ns/op,
// which counts the time other processes had the cores.
func reportCPU(b *testing.B) func() {
	start := cputime.Self()
	return func() {
		if used := cputime.Self() - start; used > 0 && b.N > 0 {
			b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
