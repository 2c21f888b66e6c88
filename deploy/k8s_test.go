package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	istionet "istio.io/api/networking/v1"
	istiosec "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest, as kustomize gives it.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}
func (o object) id() string { return o.kind() + "/" + o.name() }

// build renders kustomization dir of fsys.
func build(fsys filesys.FileSystem, dir string) ([]object, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []object
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		var o object
		if err := yaml.Unmarshal(y, &o); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// The overlays and components, and which combinations are supported:
// istio and keda act on the distributed contexts, which the embedded
// overlay has not (the checker refuses them there: a test says so).
var (
	overlays   = []string{"embedded", "distributed"}
	components = []string{"istio", "keda", "observability"}
)

func supported(overlay string, comps []string) bool {
	return overlay == "distributed" || !slices.ContainsFunc(comps, func(c string) bool { return c != "observability" })
}

// combo renders overlay with comps (in the order of components) through
// a kustomization written to a temporary directory.
func combo(t *testing.T, overlay string, comps []string) ([]object, error) {
	t.Helper()
	k8s, err := filepath.Abs("k8s")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// kustomize takes no absolute path: name the repository's from dir.
	if k8s, err = filepath.Rel(dir, k8s); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\n", filepath.Join(k8s, "overlays", overlay))
	if len(comps) > 0 {
		b.WriteString("components:\n")
		for _, c := range comps {
			fmt.Fprintf(&b, "  - %s\n", filepath.Join(k8s, "components", c))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return build(filesys.MakeFsOnDisk(), dir)
}

// subsets are every subset of components, in their order.
func subsets() [][]string {
	var out [][]string
	for mask := range 1 << len(components) {
		var s []string
		for i, c := range components {
			if mask&(1<<i) != 0 {
				s = append(s, c)
			}
		}
		out = append(out, s)
	}
	return out
}

// TestKustomizeOverlays builds each overlay as `kubectl apply -k` would,
// straight from the repository, and checks it.
func TestKustomizeOverlays(t *testing.T) {
	fc := codeFacts(t)
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			objs, err := build(filesys.MakeFsOnDisk(), filepath.Join("k8s", "overlays", o))
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range check(objs, fc) {
				t.Error(err)
			}
		})
	}
}

// TestKustomizeCombinations builds every overlay with every combination
// of components and checks each; the unsupported ones must be refused.
func TestKustomizeCombinations(t *testing.T) {
	fc := codeFacts(t)
	for _, o := range overlays {
		for _, comps := range subsets() {
			name := o + "+" + strings.Join(comps, "+")
			t.Run(name, func(t *testing.T) {
				objs, err := combo(t, o, comps)
				if err != nil {
					if supported(o, comps) {
						t.Fatal(err)
					}
					return // refused by kustomize itself
				}
				errs := check(objs, fc)
				if !supported(o, comps) {
					if len(errs) == 0 {
						t.Errorf("%s is not supported, but the checker passed it", name)
					}
					return
				}
				for _, err := range errs {
					t.Error(err)
				}
			})
		}
	}
}

// decoded are the objects of one build, decoded strictly into their
// types.
type decoded struct {
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	netpols      []*netv1.NetworkPolicy
	pvcs         []*corev1.PersistentVolumeClaim
	scaled       []*scaledObject
	clusters     []*cnpgCluster
	vss          map[string]*istionet.VirtualService // by name
	drs          map[string]*istionet.DestinationRule
	peerAuths    []*istiosec.PeerAuthentication
	promRules    []*prometheusRule
	podMonitors  []*podMonitor
	configMaps   []*corev1.ConfigMap
	serviceAccts []*corev1.ServiceAccount
}

// strict decodes v's JSON into out, refusing unknown fields.
func strict(o object, out any) error {
	j, err := json.Marshal(o)
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(j, out)
}

// decodeIstio decodes an Istio resource: Kubernetes metadata around a
// protobuf spec, decoded with protojson, which refuses unknown fields
// (istio.io/api's own UnmarshalJSON allows them).
func decodeIstio(o object, apiVersion string, spec proto.Message) error {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Spec       json.RawMessage   `json:"spec"`
	}
	if err := strict(o, &head); err != nil {
		return err
	}
	if head.APIVersion != apiVersion {
		return fmt.Errorf("apiVersion %s, want %s", head.APIVersion, apiVersion)
	}
	return protojson.UnmarshalOptions{}.Unmarshal(head.Spec, spec)
}

func decode(objs []object) (*decoded, []error) {
	d := &decoded{vss: map[string]*istionet.VirtualService{}, drs: map[string]*istionet.DestinationRule{}}
	var errs []error
	for _, o := range objs {
		var err error
		switch o.kind() {
		case "Deployment":
			v := new(appsv1.Deployment)
			err = strict(o, v)
			d.deployments = append(d.deployments, v)
		case "Service":
			v := new(corev1.Service)
			err = strict(o, v)
			d.services = append(d.services, v)
		case "PodDisruptionBudget":
			v := new(policyv1.PodDisruptionBudget)
			err = strict(o, v)
			d.pdbs = append(d.pdbs, v)
		case "HorizontalPodAutoscaler":
			v := new(autoscalingv2.HorizontalPodAutoscaler)
			err = strict(o, v)
			if err == nil && v.APIVersion != "autoscaling/v2" {
				err = fmt.Errorf("apiVersion %s", v.APIVersion)
			}
			d.hpas = append(d.hpas, v)
		case "NetworkPolicy":
			v := new(netv1.NetworkPolicy)
			err = strict(o, v)
			d.netpols = append(d.netpols, v)
		case "PersistentVolumeClaim":
			v := new(corev1.PersistentVolumeClaim)
			err = strict(o, v)
			d.pvcs = append(d.pvcs, v)
		case "ConfigMap":
			v := new(corev1.ConfigMap)
			err = strict(o, v)
			d.configMaps = append(d.configMaps, v)
		case "ServiceAccount":
			v := new(corev1.ServiceAccount)
			err = strict(o, v)
			d.serviceAccts = append(d.serviceAccts, v)
		case "ScaledObject":
			v := new(scaledObject)
			err = strict(o, v)
			if err == nil && v.APIVersion != "keda.sh/v1alpha1" {
				err = fmt.Errorf("apiVersion %s", v.APIVersion)
			}
			d.scaled = append(d.scaled, v)
		case "Cluster":
			v := new(cnpgCluster)
			err = strict(o, v)
			if err == nil && v.APIVersion != "postgresql.cnpg.io/v1" {
				err = fmt.Errorf("apiVersion %s", v.APIVersion)
			}
			d.clusters = append(d.clusters, v)
		case "VirtualService":
			v := new(istionet.VirtualService)
			err = decodeIstio(o, "networking.istio.io/v1", v)
			d.vss[o.name()] = v
		case "DestinationRule":
			v := new(istionet.DestinationRule)
			err = decodeIstio(o, "networking.istio.io/v1", v)
			d.drs[o.name()] = v
		case "PeerAuthentication":
			v := new(istiosec.PeerAuthentication)
			err = decodeIstio(o, "security.istio.io/v1", v)
			d.peerAuths = append(d.peerAuths, v)
		case "PrometheusRule":
			v := new(prometheusRule)
			err = strict(o, v)
			d.promRules = append(d.promRules, v)
		case "PodMonitor":
			v := new(podMonitor)
			err = strict(o, v)
			d.podMonitors = append(d.podMonitors, v)
		default:
			err = fmt.Errorf("a kind the checker does not know")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.id(), err))
		}
	}
	return d, errs
}
