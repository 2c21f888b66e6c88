package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/internal/platform/telemetry"
)

// TestMetricsNameTheRoute: the gateway serves a copy of the request, so
// it names each request's route and cluster to the metrics around it.
func TestMetricsNameTheRoute(t *testing.T) {
	gw, token := benchGateway(t, "http://127.0.0.1:1", stubTransport{})
	m := telemetry.New()
	h := m.HTTP(gw)
	for _, auth := range []string{"Bearer " + token, "Bearer " + token, ""} { // the product is public
		req := httptest.NewRequest(http.MethodGet, "/api/v1/products/0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)) // refused: named all the same
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodDelete, "/nowhere", nil))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`agora_http_requests_total{code="200",method="GET",route="GET /api/v1/products/{id}",service="catalog"} 3`,
		`agora_http_requests_total{code="401",method="GET",route="GET /api/v1/me",service="identity"} 1`,
		`method="DELETE",route="unmatched",service=""} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(body, "agora_http_requests_total"))
		}
	}
}

func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
