package ops

import (
	"net/http"
	"time"

	"github.com/agora-commerce/agora/internal/identity/audit"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

// InstanceStatus is an instance of a cluster as the gateway sees it.
type InstanceStatus struct {
	// ID names the instance within its cluster.
	ID string `json:"id"`
	// URL is where the gateway reaches it.
	URL string `json:"url"`
	// Weight is its share of its subset's traffic (at least 1).
	Weight int `json:"weight"`
	// Canary marks an instance of the canary subset.
	Canary bool `json:"canary"`
	// Healthy tells whether the balancer sends it traffic (not ejected).
	Healthy bool `json:"healthy"`
	// Ejected tells whether outlier ejection took it out.
	Ejected bool `json:"ejected"`
	// EjectedUntil is when its ejection ends (RFC 3339), if ejected.
	EjectedUntil string `json:"ejected_until,omitempty"`
}

// ClusterStatus is an upstream cluster as the gateway sees it.
type ClusterStatus struct {
	// Name is the cluster's name.
	Name string `json:"name"`
	// Breaker is its circuit breaker's state: closed, open or half-open.
	Breaker string `json:"breaker"`
	// InFlight counts its requests holding a bulkhead permit.
	InFlight int `json:"in_flight"`
	// MaxConcurrent is its bulkhead's size.
	MaxConcurrent int `json:"max_concurrent"`
	// Instances are its registered instances.
	Instances []InstanceStatus `json:"instances"`
}

// services serves GET /api/v1/ops/services: every upstream cluster of
// the gateway, its breaker and bulkhead, and its instances with their
// outlier ejection.
func (a *API) services(w http.ResponseWriter, r *http.Request) {
	if _, ok := begin(w, r); !ok {
		return
	}
	if a.cfg.Upstreams == nil || a.cfg.Registry == nil {
		httpapi.Error(w, r, errNoGateway)
		return
	}
	out := []ClusterStatus{}
	for _, u := range a.cfg.Upstreams() {
		cs := ClusterStatus{Name: u.Name, Breaker: "closed", Instances: []InstanceStatus{}}
		if u.Breaker != nil {
			cs.Breaker, cs.InFlight, cs.MaxConcurrent = u.Breaker.State().String(), u.Breaker.InFlight(), u.Breaker.MaxConcurrent()
		}
		var ejected map[string]time.Time
		if u.Balancer != nil {
			ejected = u.Balancer.EjectedUntil()
		}
		for _, in := range a.cfg.Registry.Instances(u.Name) {
			is := InstanceStatus{ID: in.ID, URL: in.URL, Weight: max(in.Weight, 1), Canary: in.Canary, Healthy: true}
			if until, ok := ejected[in.ID]; ok {
				is.Healthy, is.Ejected, is.EjectedUntil = false, true, until.UTC().Format(time.RFC3339)
			}
			cs.Instances = append(cs.Instances, is)
		}
		out = append(out, cs)
	}
	httpapi.JSON(w, http.StatusOK, map[string]any{"clusters": out})
}

// errNoGateway answers the services of a process without a gateway.
var errNoGateway = &errs.Error{Code: errs.Unavailable, Reason: "not_in_this_process", Message: "this process runs no gateway"}

type overview struct {
	// Tenant is the caller's.
	Tenant string `json:"tenant"`
	// AuditStream is the stream of the tenant's audit log.
	AuditStream string `json:"audit_stream"`
	// Head is the log's head (absent without a store).
	Head *uint64 `json:"head,omitempty"`
	// Mode is embedded or distributed.
	Mode string `json:"mode"`
	// Services names the platform's services.
	Services []string `json:"services"`
}

// overview serves GET /api/v1/ops/overview: the caller's tenant and its
// audit log's stream (read it at /api/v1/ops/streams/{audit_stream}),
// the log's head, how the platform runs and its services.
func (a *API) overview(w http.ResponseWriter, r *http.Request) {
	c, ok := begin(w, r)
	if !ok {
		return
	}
	v := overview{Tenant: c.Tenant, AuditStream: audit.Stream(c.Tenant), Mode: a.cfg.Mode, Services: a.cfg.Services}
	if v.Services == nil {
		v.Services = []string{}
	}
	if len(a.cfg.Logs) > 0 {
		_, head, err := a.heads(r.Context())
		if err != nil {
			httpapi.Error(w, r, err)
			return
		}
		v.Head = &head
	}
	httpapi.JSON(w, http.StatusOK, v)
}
