package deploy_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// clone deep-copies objs.
func clone(t *testing.T, objs []object) []object {
	t.Helper()
	j, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	var out []object
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// find returns the object kind/name of objs.
func find(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.kind() == kind && o.name() == name {
			return o
		}
	}
	t.Fatalf("no %s/%s", kind, name)
	return nil
}

// dig walks o by keys (strings for maps, ints for lists).
func dig(o any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			o = o.(map[string]any)[k]
		case int:
			o = o.([]any)[k]
		}
	}
	return o
}

// container is Deployment name's Agora container in objs.
func container(t *testing.T, objs []object, name string) map[string]any {
	t.Helper()
	for _, c := range dig(map[string]any(find(t, objs, "Deployment", name)), "spec", "template", "spec", "containers").([]any) {
		if c.(map[string]any)["name"] == agoraContainer {
			return c.(map[string]any)
		}
	}
	t.Fatalf("Deployment %s has no agora container", name)
	return nil
}

func remove(objs []object, kind, name string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() != kind || o.name() != name {
			out = append(out, o)
		}
	}
	return out
}

// TestCheckerRefusesMistakes breaks one thing at a time in a good build
// (every component on) and sees the checker name it: each check can fail.
func TestCheckerRefusesMistakes(t *testing.T) {
	fc := codeFacts(t)
	good, err := combo(t, "distributed", components)
	if err != nil {
		t.Fatal(err)
	}
	if errs := check(good, fc); len(errs) > 0 {
		t.Fatalf("the good build fails: %v", errs)
	}
	cases := []struct {
		name   string
		mutate func([]object) []object
		want   string
	}{
		{"a readiness probe on a path the binary does not serve", func(o []object) []object {
			dig(container(t, o, "ordering"), "readinessProbe", "httpGet").(map[string]any)["path"] = "/ready"
			return o
		}, "readiness probe: path /ready"},
		{"a liveness probe on another port", func(o []object) []object {
			dig(container(t, o, "catalog"), "livenessProbe", "httpGet").(map[string]any)["port"] = 9090
			return o
		}, "liveness probe: port 9090"},
		{"a listener on loopback", func(o []object) []object {
			c := container(t, o, "inventory")
			for _, e := range c["env"].([]any) {
				if e.(map[string]any)["name"] == "AGORA_ADDR" {
					e.(map[string]any)["value"] = "127.0.0.1:8080"
				}
			}
			return o
		}, "listens on loopback"},
		{"an environment variable the binary does not read", func(o []object) []object {
			c := container(t, o, "payments")
			c["env"] = append(c["env"].([]any), map[string]any{"name": "AGORA_POSTGRES_URI", "value": "postgres://x"})
			return o
		}, "env AGORA_POSTGRES_URI: the binary does not read it"},
		{"a command replacing the entrypoint", func(o []object) []object {
			container(t, o, "bff")["command"] = []any{"agora"}
			return o
		}, "replaces the image's ENTRYPOINT"},
		{"--only of a context that does not exist", func(o []object) []object {
			container(t, o, "shipping")["args"] = []any{"--only", "shippping"}
			return o
		}, "--only shippping"},
		{"another image in one Deployment", func(o []object) []object {
			container(t, o, "identity")["image"] = "ghcr.io/agora-commerce/agora:0.0.9"
			return o
		}, "image differs"},
		{"a writable root filesystem", func(o []object) []object {
			container(t, o, "gateway")["securityContext"].(map[string]any)["readOnlyRootFilesystem"] = false
			return o
		}, "root filesystem is not read-only"},
		{"no memory limit", func(o []object) []object {
			delete(dig(container(t, o, "ordering"), "resources", "limits").(map[string]any), "memory")
			return o
		}, "no memory limit"},
		{"a field Kubernetes does not know", func(o []object) []object {
			container(t, o, "catalog")["livenessProbe"].(map[string]any)["periodSecond"] = 10
			return o
		}, `unknown field "periodSecond"`},
		{"a Deployment without PodDisruptionBudget", func(o []object) []object {
			return remove(o, "PodDisruptionBudget", "catalog")
		}, "Deployment catalog: no PodDisruptionBudget"},
		{"a Deployment without autoscaler", func(o []object) []object {
			return remove(o, "HorizontalPodAutoscaler", "identity")
		}, "Deployment identity: 0 autoscalers"},
		{"a Deployment without Service", func(o []object) []object {
			return remove(o, "Service", "shipping")
		}, "Deployment shipping: no Service"},
		{"no default-deny policy", func(o []object) []object {
			return remove(o, "NetworkPolicy", "agora-default-deny")
		}, "no default-deny NetworkPolicy"},
		{"no way to NATS", func(o []object) []object {
			return remove(o, "NetworkPolicy", "agora-egress-platform")
		}, "cannot reach NATS"},
		{"a KEDA trigger on a consumer the code does not have", func(o []object) []object {
			dig(map[string]any(find(t, o, "ScaledObject", "inventory")), "spec", "triggers", 1, "metadata").(map[string]any)["consumer"] = "inventory-checkout"
			return o
		}, "no durable consumer inventory-checkout on stream AGORA_EVENTS"},
		{"a KEDA trigger on a stream without the namespace", func(o []object) []object {
			dig(map[string]any(find(t, o, "ScaledObject", "bff")), "spec", "triggers", 1, "metadata").(map[string]any)["stream"] = "EVENTS"
			return o
		}, "on stream EVENTS"},
		{"a route's timeout that is not the gateway's", func(o []object) []object {
			dig(map[string]any(find(t, o, "VirtualService", "ordering")), "spec", "http", 0).(map[string]any)["timeout"] = "30s"
			return o
		}, "timeout 30s, the gateway's is 15s"},
		{"retries on a POST without an Idempotency-Key", func(o []object) []object {
			dig(map[string]any(find(t, o, "VirtualService", "payments")), "spec", "http", 1, "retries").(map[string]any)["attempts"] = 3
			return o
		}, "the gateway never retries it"},
		{"a per-try timeout that is not the gateway's", func(o []object) []object {
			dig(map[string]any(find(t, o, "VirtualService", "catalog")), "spec", "http", 0, "retries").(map[string]any)["perTryTimeout"] = "3s"
			return o
		}, "retries 2 × 3s, the gateway's are 2 × 10s"},
		{"a 50/50 split", func(o []object) []object {
			for _, d := range dig(map[string]any(find(t, o, "VirtualService", "bff")), "spec", "http", 0, "route").([]any) {
				d.(map[string]any)["weight"] = 50
			}
			return o
		}, "want v1 90 / v2 10"},
		{"a route of the table missing from the mesh", func(o []object) []object {
			vs := map[string]any(find(t, o, "VirtualService", "shipping"))
			http := dig(vs, "spec", "http").([]any)
			vs["spec"].(map[string]any)["http"] = http[1:]
			return o
		}, `route "GET /api/v1/shipments/{order_id}"`},
		{"outlier detection of 3 errors", func(o []object) []object {
			dig(map[string]any(find(t, o, "DestinationRule", "identity")), "spec", "trafficPolicy", "outlierDetection").(map[string]any)["consecutive5xxErrors"] = 3
			return o
		}, "outlier detection wants 5 consecutive 5xx"},
		{"permissive mTLS", func(o []object) []object {
			dig(map[string]any(find(t, o, "PeerAuthentication", "default")), "spec", "mtls").(map[string]any)["mode"] = "PERMISSIVE"
			return o
		}, "STRICT mTLS"},
		{"an Istio field that does not exist", func(o []object) []object {
			dig(map[string]any(find(t, o, "DestinationRule", "catalog")), "spec", "trafficPolicy", "outlierDetection").(map[string]any)["consecutiveErrors5xx"] = 5
			return o
		}, "consecutiveErrors5xx"},
		{"a database URL from a Secret no Cluster makes", func(o []object) []object {
			c := container(t, o, "payments")
			for _, e := range c["env"].([]any) {
				if e.(map[string]any)["name"] == "AGORA_POSTGRES_URL_PAYMENTS" {
					dig(e, "valueFrom", "secretKeyRef").(map[string]any)["name"] = "payments-app"
				}
			}
			return o
		}, "AGORA_POSTGRES_URL_PAYMENTS is not the uri of a CloudNativePG Cluster"},
		{"alert rules that drifted from rules.yml", func(o []object) []object {
			dig(map[string]any(find(t, o, "PrometheusRule", "agora")), "spec", "groups", 0).(map[string]any)["name"] = "renamed"
			return o
		}, "differs from deploy/observability/rules.yml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := check(tc.mutate(clone(t, good)), fc)
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
			}
			t.Errorf("the checker did not refuse it with %q; it said %v", tc.want, errs)
		})
	}
}
