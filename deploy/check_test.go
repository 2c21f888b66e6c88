package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	istionet "istio.io/api/networking/v1"
	istiosec "istio.io/api/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/agora-commerce/agora/internal/gateway/routes"
)

// agoraContainer is the name of Agora's container in every pod.
const agoraContainer = "agora"

// check is what a reviewer of a build would check; it returns every
// problem found.
func check(objs []object, fc *facts) []error {
	d, errs := decode(objs)
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	images := map[string][]string{} // Agora's image → the Deployments that run it
	for _, dep := range d.deployments {
		checkPod(dep, fc, bad)
		for _, c := range dep.Spec.Template.Spec.Containers {
			if c.Name == agoraContainer && dep.Spec.Template.Labels["version"] != "v2" {
				images[c.Image] = append(images[c.Image], dep.Name)
			}
		}
		checkTopology(d, dep, bad)
	}
	if len(images) != 1 {
		bad("Agora's image differs between Deployments: %v", images)
	}
	for img := range images {
		if !strings.Contains(img, "/") || !strings.Contains(img[strings.LastIndex(img, "/"):], ":") {
			bad("image %q: not a registry image with a tag (the images transformer did not apply?)", img)
		}
	}
	for _, dep := range d.deployments {
		for _, c := range dep.Spec.Template.Spec.Containers {
			if c.Name == agoraContainer && dep.Spec.Template.Labels["version"] == "v2" && len(images) == 1 {
				for img := range images {
					if repo(c.Image) != repo(img) {
						bad("Deployment %s: the canary runs %s, not a release of %s", dep.Name, c.Image, repo(img))
					}
				}
			}
		}
	}
	checkAutoscalers(d, fc, bad)
	checkNetworkPolicies(d, bad)
	checkDatabases(d, bad)
	if len(d.vss) > 0 || len(d.drs) > 0 || len(d.peerAuths) > 0 {
		checkIstio(d, fc, bad)
	}
	checkObservability(d, bad)
	return errs
}

func repo(image string) string {
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i]
	}
	return image
}

// isAgora reports whether dep runs Agora.
func isAgora(dep *appsv1.Deployment) bool {
	return slices.ContainsFunc(dep.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == agoraContainer })
}

// only is the --only argument of dep's Agora container ("" embedded).
func only(dep *appsv1.Deployment) string {
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name != agoraContainer {
			continue
		}
		for i, a := range c.Args {
			if a == "--only" && i+1 < len(c.Args) {
				return c.Args[i+1]
			}
			if v, ok := strings.CutPrefix(a, "--only="); ok {
				return v
			}
		}
		for _, e := range c.Env {
			if e.Name == "AGORA_ONLY" {
				return e.Value
			}
		}
	}
	return ""
}

func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkPod checks dep's pod: every container locked down, with resources
// and probes; Agora's container with the binary's own paths, port, flags
// and environment.
func checkPod(dep *appsv1.Deployment, fc *facts, bad func(string, ...any)) {
	spec := dep.Spec.Template.Spec
	psc := spec.SecurityContext
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		bad("Deployment %s: mounts a service account token", dep.Name)
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, c := range spec.Containers {
		where := fmt.Sprintf("Deployment %s, container %s", dep.Name, c.Name)
		sc := c.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		seccomp := (sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault) ||
			(psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
		switch {
		case !nonRoot:
			bad("%s: not runAsNonRoot", where)
		case !seccomp:
			bad("%s: seccomp profile not RuntimeDefault", where)
		case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			bad("%s: allowPrivilegeEscalation is not false", where)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			bad("%s: the root filesystem is not read-only", where)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			bad("%s: capabilities: drop ALL, add none", where)
		case sc.Privileged != nil && *sc.Privileged:
			bad("%s: privileged", where)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				bad("%s: no %s request", where, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				bad("%s: no %s limit", where, r)
			}
		}
		if c.StartupProbe == nil || c.LivenessProbe == nil || c.ReadinessProbe == nil {
			bad("%s: needs startup, liveness and readiness probes", where)
		}
		if c.Name == agoraContainer {
			checkAgora(dep, c, volumes, fc, func(format string, args ...any) { bad(where+": "+format, args...) })
		}
	}
}

// checkAgora checks Agora's container against the code.
func checkAgora(dep *appsv1.Deployment, c corev1.Container, volumes map[string]corev1.Volume, fc *facts, bad func(string, ...any)) {
	if len(c.Command) > 0 {
		bad("command %v replaces the image's ENTRYPOINT (agora serve): use args", c.Command)
	}
	for i, a := range c.Args {
		if strings.HasPrefix(a, "--only") && i+1 < len(c.Args) && !slices.Contains(fc.contexts, c.Args[i+1]) {
			bad("--only %s: not one of %v", c.Args[i+1], fc.contexts)
		}
	}
	// The environment: every variable one the binary reads, or one that a
	// later variable uses ($(NAME)), defined before its use.
	defined := map[string]bool{}
	used := map[string]bool{}
	for _, e := range c.Env {
		for _, m := range envRef.FindAllStringSubmatch(e.Value, -1) {
			used[m[1]] = true
			if !defined[m[1]] {
				bad("env %s uses $(%s) before it is defined: Kubernetes leaves it as is", e.Name, m[1])
			}
		}
		if defined[e.Name] {
			bad("env %s set twice", e.Name)
		}
		defined[e.Name] = true
	}
	for _, e := range c.Env {
		if !fc.env[e.Name] && !used[e.Name] {
			bad("env %s: the binary does not read it (no \"%s\" in the code) and no other variable uses it", e.Name, e.Name)
		}
	}
	if len(c.EnvFrom) > 0 {
		bad("envFrom: list the variables, so that each can be checked")
	}
	// The listener: AGORA_ADDR (or its default) on every interface, at the
	// port the probes and the Service use.
	addr, ok := envValue(c, "AGORA_ADDR")
	if !ok {
		addr = fc.addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad("AGORA_ADDR %q: %v", addr, err)
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		bad("AGORA_ADDR %s listens on loopback only: nothing outside the pod reaches it", addr)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		if strconv.Itoa(int(p.ContainerPort)) != port {
			bad("containerPort %d (%s): the process listens on %s (AGORA_ADDR)", p.ContainerPort, p.Name, port)
		}
	}
	probe := func(kind string, p *corev1.Probe, path string) {
		if p == nil {
			return
		}
		if p.HTTPGet == nil {
			bad("%s probe: not an HTTP GET", kind)
			return
		}
		if p.HTTPGet.Path != path || !fc.paths[p.HTTPGet.Path] {
			bad("%s probe: path %s, want %s (served: internal/server)", kind, p.HTTPGet.Path, path)
		}
		got := p.HTTPGet.Port.String()
		if p.HTTPGet.Port.StrVal != "" {
			n, ok := ports[p.HTTPGet.Port.StrVal]
			if !ok {
				bad("%s probe: no port named %s", kind, p.HTTPGet.Port.StrVal)
				return
			}
			got = strconv.Itoa(int(n))
		}
		if got != port {
			bad("%s probe: port %s, but the process listens on %s (AGORA_ADDR)", kind, got, port)
		}
	}
	probe("startup", c.StartupProbe, "/healthz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	// Writable places on a read-only root: the data directory and /tmp.
	dataDir, ok := envValue(c, "AGORA_DATA_DIR")
	if !ok || !filepath.IsAbs(dataDir) {
		bad("AGORA_DATA_DIR %q: set it to an absolute path on a volume", dataDir)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
		if _, ok := volumes[m.Name]; !ok {
			bad("mount %s: no volume %s", m.MountPath, m.Name)
		}
	}
	for _, dir := range []string{dataDir, "/tmp"} {
		if _, ok := mounts[dir]; !ok {
			bad("%s is not on a volume (the root filesystem is read-only)", dir)
		}
	}
	if only(dep) == "" && volumes[mounts[dataDir]].PersistentVolumeClaim == nil {
		bad("the embedded process's data directory is not on a PersistentVolumeClaim")
	}
}

func selects(sel map[string]string, podLabels map[string]string) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(podLabels))
}

func selectsLS(ls *metav1.LabelSelector, podLabels map[string]string) bool {
	if ls == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil && !s.Empty() && s.Matches(labels.Set(podLabels))
}

// checkTopology checks that dep has what it needs around it: a Service,
// and for a distributed context a PodDisruptionBudget and one autoscaler
// (and no replica count of its own); the embedded process is one replica
// replaced with Recreate.
func checkTopology(d *decoded, dep *appsv1.Deployment, bad func(string, ...any)) {
	pl := dep.Spec.Template.Labels
	if !selectsLS(dep.Spec.Selector, pl) {
		bad("Deployment %s: its selector does not select its pods", dep.Name)
	}
	svc := false
	for _, s := range d.services {
		if selects(s.Spec.Selector, pl) {
			svc = true
		}
	}
	if !svc {
		bad("Deployment %s: no Service selects its pods", dep.Name)
	}
	if !isAgora(dep) {
		return
	}
	pdb := false
	for _, p := range d.pdbs {
		if selectsLS(p.Spec.Selector, pl) {
			pdb = true
		}
	}
	scalers := 0
	for _, h := range d.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == dep.Name {
			scalers++
		}
	}
	for _, so := range d.scaled {
		if so.Spec.ScaleTargetRef.Name == dep.Name {
			scalers++
		}
	}
	switch {
	case only(dep) == "":
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			bad("Deployment %s (embedded): must be one replica replaced with Recreate (one process owns the stores)", dep.Name)
		}
		if scalers > 0 {
			bad("Deployment %s (embedded): cannot scale out, but is autoscaled", dep.Name)
		}
	case pl["version"] == "v2": // a canary: one replica, under its context's Service and PDB
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 || !pdb {
			bad("Deployment %s (canary): one replica under its context's PodDisruptionBudget", dep.Name)
		}
	default:
		if !pdb {
			bad("Deployment %s: no PodDisruptionBudget", dep.Name)
		}
		if scalers != 1 {
			bad("Deployment %s: %d autoscalers (HPA or ScaledObject), want 1", dep.Name, scalers)
		}
		if dep.Spec.Replicas != nil {
			bad("Deployment %s: sets replicas, which each apply resets under its autoscaler", dep.Name)
		}
	}
}

func deployment(d *decoded, name string) *appsv1.Deployment {
	for _, dep := range d.deployments {
		if dep.Name == name {
			return dep
		}
	}
	return nil
}

// checkAutoscalers: HPAs on CPU; ScaledObjects on CPU and on the lag of
// durable consumers that the target's context runs.
func checkAutoscalers(d *decoded, fc *facts, bad func(string, ...any)) {
	for _, h := range d.hpas {
		if deployment(d, h.Spec.ScaleTargetRef.Name) == nil {
			bad("HPA %s: no Deployment %s", h.Name, h.Spec.ScaleTargetRef.Name)
		}
		cpu := slices.ContainsFunc(h.Spec.Metrics, func(m autoscalingv2.MetricSpec) bool {
			return m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil
		})
		if !cpu || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
			bad("HPA %s: scale on CPU utilization, from at least 2 replicas", h.Name)
		}
	}
	for _, so := range d.scaled {
		dep := deployment(d, so.Spec.ScaleTargetRef.Name)
		if dep == nil {
			bad("ScaledObject %s: no Deployment %s", so.Name, so.Spec.ScaleTargetRef.Name)
			continue
		}
		ctx := only(dep)
		lag := 0
		for _, tr := range so.Spec.Triggers {
			switch tr.Type {
			case "cpu":
			case "nats-jetstream":
				lag++
				stream, consumer := tr.Metadata["stream"], tr.Metadata["consumer"]
				owner, ok := fc.durables[stream][consumer]
				switch {
				case !ok:
					bad("ScaledObject %s: no durable consumer %s on stream %s in the code (durables: %v)", so.Name, consumer, stream, fc.durables)
				case owner != ctx:
					bad("ScaledObject %s: consumer %s is %s's, not %s's", so.Name, consumer, owner, ctx)
				}
				if _, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil {
					bad("ScaledObject %s: lagThreshold %q", so.Name, tr.Metadata["lagThreshold"])
				}
				if !strings.HasSuffix(tr.Metadata["natsServerMonitoringEndpoint"], ":8222") {
					bad("ScaledObject %s: the monitoring endpoint is NATS's port 8222", so.Name)
				}
			default:
				bad("ScaledObject %s: trigger %s", so.Name, tr.Type)
			}
		}
		if lag == 0 {
			bad("ScaledObject %s: no JetStream trigger", so.Name)
		}
		// Every durable the context runs is watched.
		for stream, ds := range fc.durables {
			for consumer, owner := range ds {
				if owner == ctx && !slices.ContainsFunc(so.Spec.Triggers, func(tr scaledTrigger) bool {
					return tr.Metadata["stream"] == stream && tr.Metadata["consumer"] == consumer
				}) {
					bad("ScaledObject %s: %s's consumer %s on %s has no trigger", so.Name, ctx, consumer, stream)
				}
			}
		}
	}
}

// allowsEgress reports whether some policy selecting pod labels pl lets
// it reach port on TCP or UDP.
func allowsEgress(d *decoded, pl map[string]string, port int32) bool {
	for _, np := range d.netpols {
		if !selectsLSAll(&np.Spec.PodSelector, pl) {
			continue
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.IntVal == port {
					return true
				}
			}
		}
	}
	return false
}

// selectsLSAll is selectsLS where an empty selector selects every pod.
func selectsLSAll(ls *metav1.LabelSelector, pl map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(ls)
	return err == nil && s.Matches(labels.Set(pl))
}

// checkNetworkPolicies: Agora's pods are denied everything by default;
// only the edge takes traffic from anywhere; every pod resolves names;
// distributed processes reach NATS and identity's keys.
func checkNetworkPolicies(d *decoded, bad func(string, ...any)) {
	deny := false
	for _, np := range d.netpols {
		if len(np.Spec.Ingress) == 0 && len(np.Spec.Egress) == 0 && slices.Contains(np.Spec.PolicyTypes, netv1.PolicyTypeIngress) &&
			slices.Contains(np.Spec.PolicyTypes, netv1.PolicyTypeEgress) && np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] == "agora" {
			deny = true
		}
		for _, r := range np.Spec.Ingress {
			open := len(r.From) == 0 || slices.ContainsFunc(r.From, func(p netv1.NetworkPolicyPeer) bool {
				return p.IPBlock != nil && (p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0")
			})
			if open && np.Spec.PodSelector.MatchLabels["agora.dev/edge"] != "true" {
				bad("NetworkPolicy %s: lets anything in to pods that are not the edge", np.Name)
			}
		}
	}
	if !deny {
		bad("no default-deny NetworkPolicy for Agora's pods")
	}
	for _, dep := range d.deployments {
		if !isAgora(dep) {
			continue
		}
		pl := dep.Spec.Template.Labels
		if !allowsEgress(d, pl, 53) {
			bad("Deployment %s: its pods cannot resolve names (no egress to port 53)", dep.Name)
		}
		if only(dep) == "" {
			continue
		}
		if !allowsEgress(d, pl, 4222) {
			bad("Deployment %s: its pods cannot reach NATS (4222)", dep.Name)
		}
		if !allowsEgress(d, pl, 5432) {
			bad("Deployment %s: its pods cannot reach PostgreSQL (5432)", dep.Name)
		}
		if pl["agora.dev/edge"] != "true" {
			// Ingress only from the gateway or the BFF (or Prometheus).
			in := false
			for _, np := range d.netpols {
				if !selectsLSAll(&np.Spec.PodSelector, pl) {
					continue
				}
				for _, r := range np.Spec.Ingress {
					in = in || len(r.From) > 0
				}
			}
			if !in {
				bad("Deployment %s: no policy lets the gateway in", dep.Name)
			}
		}
	}
}

// checkDatabases: every PostgreSQL URL a process reads comes from a
// CloudNativePG Cluster's app Secret that exists.
func checkDatabases(d *decoded, bad func(string, ...any)) {
	clusters := map[string]bool{}
	for _, c := range d.clusters {
		clusters[c.Name+"-app"] = true
		if c.Spec.Instances < 2 || c.Spec.PostgreSQL.Synchronous == nil || c.Spec.PostgreSQL.Synchronous.Number < 1 {
			bad("Cluster %s: at least one synchronous standby (an append is acknowledged when durable)", c.Name)
		}
	}
	for _, dep := range d.deployments {
		for _, c := range dep.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "AGORA_POSTGRES_URL") {
					continue
				}
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || !clusters[e.ValueFrom.SecretKeyRef.Name] || e.ValueFrom.SecretKeyRef.Key != "uri" {
					bad("Deployment %s: %s is not the uri of a CloudNativePG Cluster's app Secret", dep.Name, e.Name)
				}
			}
		}
	}
}

// istioRegex is the RE2 regular expression a VirtualService matches a
// route table pattern's path with: a {wildcard} is one segment.
func istioRegex(path string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, seg := range strings.Split(path, "/")[1:] {
		b.WriteString("/")
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			b.WriteString("[^/]+")
		} else {
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString("$")
	return b.String()
}

func dur(d interface{ AsDuration() time.Duration }) time.Duration {
	if reflect.ValueOf(d).IsNil() {
		return -1
	}
	return d.AsDuration()
}

// checkIstio: every route of the gateway's table to a context is in that
// context's VirtualService with the table's timeout and, for requests safe
// to repeat, the gateway's retries; the canary split and its subsets;
// outlier detection and connection pools; STRICT mTLS.
func checkIstio(d *decoded, fc *facts, bad func(string, ...any)) {
	table := routes.Default()
	strictMTLS := slices.ContainsFunc(d.peerAuths, func(p *istiosec.PeerAuthentication) bool {
		return p.GetMtls().GetMode() == istiosec.PeerAuthentication_MutualTLS_STRICT && p.GetSelector() == nil
	})
	if !strictMTLS {
		bad("istio: no namespace-wide PeerAuthentication with STRICT mTLS")
	}
	for name, cl := range table.Clusters {
		if name == routes.Local {
			continue
		}
		vs, dr := d.vss[name], d.drs[name]
		if vs == nil || dr == nil {
			bad("istio: cluster %s has no VirtualService or DestinationRule", name)
			continue
		}
		if !slices.Equal(vs.GetHosts(), []string{name}) || dr.GetHost() != name {
			bad("istio: %s: hosts %v / %s", name, vs.GetHosts(), dr.GetHost())
		}
		// The subsets select pods of this context, v1 and v2.
		subsets := map[string]map[string]string{}
		for _, s := range dr.GetSubsets() {
			subsets[s.GetName()] = s.GetLabels()
		}
		for _, sub := range []string{"v1", "v2"} {
			sel := map[string]string{"app.kubernetes.io/component": name}
			for k, v := range subsets[sub] {
				sel[k] = v
			}
			if len(subsets[sub]) == 0 || !slices.ContainsFunc(d.deployments, func(dep *appsv1.Deployment) bool { return selects(sel, dep.Spec.Template.Labels) }) {
				bad("istio: %s: subset %s selects no pods", name, sub)
			}
		}
		od := dr.GetTrafficPolicy().GetOutlierDetection()
		if od.GetConsecutive_5XxErrors().GetValue() != 5 || dur(od.GetInterval()) != 30*time.Second ||
			dur(od.GetBaseEjectionTime()) != 30*time.Second || od.GetMaxEjectionPercent() != 50 {
			bad("istio: DestinationRule %s: outlier detection wants 5 consecutive 5xx, 30s interval and ejection, 50%% at most", name)
		}
		cp := dr.GetTrafficPolicy().GetConnectionPool()
		if cp.GetTcp().GetMaxConnections() == 0 || cp.GetHttp().GetHttp2MaxRequests() == 0 || cp.GetHttp().GetHttp1MaxPendingRequests() == 0 {
			bad("istio: DestinationRule %s: no connection pool limits", name)
		}
		retries, attempt := fc.maxRetries, fc.attemptTimeout
		if cl.MaxRetries != nil {
			retries = *cl.MaxRetries
		}
		if cl.AttemptTimeout > 0 {
			attempt = cl.AttemptTimeout
		}
		matched := map[int]bool{}
		for _, rt := range table.Routes {
			if rt.Cluster != name {
				continue
			}
			path := strings.TrimPrefix(rt.Pattern, rt.Method+" ")
			want := istioRegex(path)
			// The requests of this route: with an Idempotency-Key and
			// without, for a POST; the route's own idempotency otherwise.
			type variant struct {
				key   bool
				retry bool
			}
			vars := []variant{{false, rt.IsIdempotent(&http.Request{Method: rt.Method, Header: http.Header{}})}}
			if rt.Method == http.MethodPost && rt.Idempotent == nil {
				vars = append(vars, variant{true, true})
			}
			for _, v := range vars {
				i := -1
				for j, h := range vs.GetHttp() {
					for _, m := range h.GetMatch() {
						_, hasKey := m.GetHeaders()["idempotency-key"]
						if m.GetMethod().GetExact() == rt.Method && m.GetUri().GetRegex() == want && hasKey == v.key {
							if i < 0 {
								i = j
							}
						}
					}
				}
				what := fmt.Sprintf("istio: VirtualService %s: route %q (Idempotency-Key %v)", name, rt.Pattern, v.key)
				if i < 0 {
					bad("%s: missing (want a match on %s %s)", what, rt.Method, want)
					continue
				}
				// An earlier, broader entry must not catch it first.
				for j := range i {
					for _, m := range vs.GetHttp()[j].GetMatch() {
						if m.GetMethod().GetExact() == rt.Method && m.GetUri().GetRegex() != "" {
							if re, err := regexp.Compile(m.GetUri().GetRegex()); err == nil && re.MatchString(samplePath(path)) {
								_, hasKey := m.GetHeaders()["idempotency-key"]
								if !hasKey || v.key {
									bad("%s: caught first by entry %q", what, vs.GetHttp()[j].GetName())
								}
							}
						}
					}
				}
				matched[i] = true
				h := vs.GetHttp()[i]
				if got := dur(h.GetTimeout()); got != rt.Timeout {
					bad("%s: timeout %v, the gateway's is %v", what, got, rt.Timeout)
				}
				r := h.GetRetries()
				switch {
				case v.retry && retries > 0:
					if int(r.GetAttempts()) != retries || dur(r.GetPerTryTimeout()) != attempt || r.GetRetryOn() == "" {
						bad("%s: retries %d × %v, the gateway's are %d × %v", what, r.GetAttempts(), dur(r.GetPerTryTimeout()), retries, attempt)
					}
					for _, code := range []string{"501", "504", "505", "5xx", "gateway-error"} {
						if slices.Contains(strings.Split(r.GetRetryOn(), ","), code) {
							bad("%s: retries on %s, which the gateway does not retry", what, code)
						}
					}
				default:
					if r == nil || r.GetAttempts() != 0 {
						bad("%s: the gateway never retries it, the mesh must not either (attempts: 0)", what)
					}
				}
				checkSplit(h, name, func(format string, args ...any) { bad(what+": "+format, args...) })
			}
		}
		for j, h := range vs.GetHttp() {
			if matched[j] {
				continue
			}
			if len(h.GetMatch()) == 0 && j == len(vs.GetHttp())-1 {
				if h.GetRetries() == nil || h.GetRetries().GetAttempts() != 0 || dur(h.GetTimeout()) <= 0 {
					bad("istio: VirtualService %s: the last, catch-all entry: no retries and a timeout", name)
				}
				checkSplit(h, name, bad)
				continue
			}
			bad("istio: VirtualService %s: entry %q matches no route of the gateway's table", name, h.GetName())
		}
	}
	for name := range d.vss {
		if _, ok := table.Clusters[name]; !ok {
			bad("istio: VirtualService %s: no such cluster in the gateway's table", name)
		}
	}
}

// samplePath is a path that pattern path matches.
func samplePath(path string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x1")
}

// checkSplit: 90 % to subset v1, 10 % to v2, of the context's host.
func checkSplit(h *istionet.HTTPRoute, host string, bad func(string, ...any)) {
	w := map[string]int32{}
	for _, r := range h.GetRoute() {
		if r.GetDestination().GetHost() != host {
			bad("routes to host %s", r.GetDestination().GetHost())
		}
		w[r.GetDestination().GetSubset()] += r.GetWeight()
	}
	if len(w) != 2 || w["v1"] != 90 || w["v2"] != 10 {
		bad("split %v, want v1 90 / v2 10", w)
	}
}

// checkObservability: the PrometheusRule is deploy/observability/rules.yml,
// and the scrape reaches the pods' metrics port.
func checkObservability(d *decoded, bad func(string, ...any)) {
	if len(d.promRules) == 0 {
		return
	}
	src, err := os.ReadFile(filepath.Join("observability", "rules.yml"))
	if err != nil {
		bad("%v", err)
		return
	}
	var want ruleFile
	if err := yaml.UnmarshalStrict(src, &want); err != nil {
		bad("observability/rules.yml: %v", err)
		return
	}
	for _, pr := range d.promRules {
		if !reflect.DeepEqual(pr.Spec, want) {
			bad("PrometheusRule %s differs from deploy/observability/rules.yml (regenerate it: docs/deploy.md)", pr.Name)
		}
	}
	for _, pm := range d.podMonitors {
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if ep.Path != "/metrics" || ep.Port != "http" {
				bad("PodMonitor %s: scrape /metrics on port http", pm.Name)
			}
		}
	}
}
