// Package registry tells the gateway which instances serve each upstream
// cluster. Registry is the contract; Static is the in-process
// implementation used in embedded mode and for fixed deployments; KV, on
// a NATS JetStream key-value bucket with TTL heartbeats, serves
// distributed mode.
package registry

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
)

// Instance is one network endpoint of a cluster.
type Instance struct {
	// ID names the instance uniquely within its cluster.
	ID string
	// URL is the instance's base URL, e.g. "http://10.0.0.7:8081".
	URL string
	// Weight is the instance's relative share of its subset's traffic
	// (stable or canary); 0 counts as 1.
	Weight int
	// Canary marks an instance of the canary subset.
	Canary bool
}

// Registry lists the instances of clusters.
type Registry interface {
	// Instances returns the instances currently registered for cluster,
	// in a stable order. It is called for every proxied request, so it
	// answers without copying: the caller may keep the slice but must not
	// modify it.
	Instances(cluster string) []Instance
}

// ErrInvalid is returned (wrapped) for an instance that cannot be
// registered.
var ErrInvalid = errors.New("registry: invalid instance")

// Static is an in-process Registry. Its zero value is empty and ready;
// it is safe for concurrent use.
type Static struct {
	mu       sync.RWMutex
	clusters map[string][]Instance
}

// NewStatic returns an empty Static registry.
func NewStatic() *Static { return &Static{} }

// Register adds in to cluster, replacing an instance with the same ID.
func (s *Static) Register(cluster string, in Instance) error {
	if err := validate(cluster, in); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clusters == nil {
		s.clusters = map[string][]Instance{}
	}
	// A new slice every time: callers hold the old one (Instances).
	list := slices.Clone(s.clusters[cluster])
	if i := slices.IndexFunc(list, func(x Instance) bool { return x.ID == in.ID }); i >= 0 {
		list[i] = in
	} else {
		list = append(list, in)
	}
	s.clusters[cluster] = list
	return nil
}

// validate checks an instance before it is registered.
func validate(cluster string, in Instance) error {
	if cluster == "" {
		return fmt.Errorf("%w: empty cluster name", ErrInvalid)
	}
	if in.ID == "" {
		return fmt.Errorf("%w: empty instance ID in cluster %q", ErrInvalid, cluster)
	}
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: instance %q of %q: URL %q is not an absolute http(s) URL", ErrInvalid, in.ID, cluster, in.URL)
	}
	if in.Weight < 0 {
		return fmt.Errorf("%w: instance %q of %q: negative weight", ErrInvalid, in.ID, cluster)
	}
	return nil
}

// Deregister removes the instance id from cluster; it reports whether it
// was registered.
func (s *Static) Deregister(cluster, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.clusters[cluster]
	i := slices.IndexFunc(list, func(x Instance) bool { return x.ID == id })
	if i < 0 {
		return false
	}
	s.clusters[cluster] = slices.Delete(slices.Clone(list), i, i+1)
	return true
}

// Instances implements Registry.
func (s *Static) Instances(cluster string) []Instance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clusters[cluster]
}

// Clusters returns the names of the clusters with instances.
func (s *Static) Clusters() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var names []string
	for name, list := range s.clusters {
		if len(list) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
