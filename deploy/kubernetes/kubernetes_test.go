package kubernetes_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/redirectd/redirectd/decision"
	"github.com/redirectd/redirectd/server"
)

// dirs hold one example each: redirectd with its rules in a ConfigMap
// (.) and a fleet sharing its rules in etcd (etcd/). Every check of the
// redirectd objects runs on both.
var dirs = []string{".", "etcd"}

// manifests are the decoded objects of one directory, by kind: the
// redirectd ones, and the etcd cluster of the etcd example.
type manifests struct {
	deployment *appsv1.Deployment
	service    *corev1.Service // the one named redirectd
	configMap  *corev1.ConfigMap
	pdb        *policyv1.PodDisruptionBudget
	hpa        *autoscalingv2.HorizontalPodAutoscaler

	etcd         *appsv1.StatefulSet
	etcdServices map[string]*corev1.Service // the other Services, by name
}

// decodeManifest decodes one single-document manifest strictly into the
// k8s.io/api type its kind names: an unknown or misspelt field (field
// names are case-sensitive, unlike encoding/json's), a duplicate field or
// a value of the wrong type is an error, as it is for the API server with
// `kubectl apply --validate=strict`; it uses the API server's own decoder
// (sigs.k8s.io/json).
func decodeManifest(data []byte, into *manifests) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return err
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		into.deployment = &appsv1.Deployment{}
		obj = into.deployment
	case "v1 Service":
		var meta struct{ Metadata metav1.ObjectMeta }
		if err := yaml.Unmarshal(data, &meta); err != nil {
			return err
		}
		svc := &corev1.Service{}
		if meta.Metadata.Name == "redirectd" {
			into.service = svc
		} else {
			if into.etcdServices == nil {
				into.etcdServices = map[string]*corev1.Service{}
			}
			into.etcdServices[meta.Metadata.Name] = svc
		}
		obj = svc
	case "apps/v1 StatefulSet":
		into.etcd = &appsv1.StatefulSet{}
		obj = into.etcd
	case "v1 ConfigMap":
		into.configMap = &corev1.ConfigMap{}
		obj = into.configMap
	case "policy/v1 PodDisruptionBudget":
		into.pdb = &policyv1.PodDisruptionBudget{}
		obj = into.pdb
	case "autoscaling/v2 HorizontalPodAutoscaler":
		into.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
		obj = into.hpa
	default:
		return fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func loadManifests(t *testing.T, dir string) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeManifest(data, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if m.deployment == nil || m.service == nil || m.pdb == nil || m.hpa == nil {
		t.Fatalf("want a Deployment, a Service named redirectd, a PodDisruptionBudget and a HorizontalPodAutoscaler among %v", files)
	}
	if m.configMap == nil && m.etcd == nil {
		t.Fatalf("want the rules' ConfigMap or an etcd StatefulSet among %v", files)
	}
	return m
}

// eachDir runs check on the manifests of every example directory.
func eachDir(t *testing.T, check func(t *testing.T, m manifests)) {
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) { check(t, loadManifests(t, dir)) })
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	eachDir(t, func(t *testing.T, m manifests) {})

	// The decoder must refuse what the API server would refuse.
	data, err := os.ReadFile("deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, from, to string }{
		{"misspelt field", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"wrong type", "replicas: 2", "replicas: two"},
		{"unknown kind", "kind: Deployment", "kind: Deploymnet"},
		{"duplicate field", "  replicas: 2\n", "  replicas: 2\n  replicas: 3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(data), tt.from) {
				t.Fatalf("deployment.yaml no longer contains %q: update this case", tt.from)
			}
			var m manifests
			if err := decodeManifest([]byte(strings.Replace(string(data), tt.from, tt.to, 1)), &m); err == nil {
				t.Errorf("replacing %q by %q was accepted", tt.from, tt.to)
			}
		})
	}
}

func container(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "redirectd" {
		t.Fatalf("want one container named redirectd, got %d", len(cs))
	}
	return cs[0]
}

func TestDeploymentProbes(t *testing.T) {
	eachDir(t, func(t *testing.T, m manifests) {
		c := container(t, m.deployment)

		byName := map[string]int32{}
		var numbers []int32
		for _, p := range c.Ports {
			byName[p.Name] = p.ContainerPort
			numbers = append(numbers, p.ContainerPort)
		}
		if byName["grpc"] != 50051 || byName["http"] != 8080 {
			t.Errorf("container ports %v, want grpc 50051 and http 8080", byName)
		}
		// A probe port, by name or number, must be a port the container declares.
		portOf := func(p intstr.IntOrString) (int32, bool) {
			if p.Type == intstr.String {
				n, ok := byName[p.StrVal]
				return n, ok
			}
			return p.IntVal, slices.Contains(numbers, p.IntVal)
		}

		tests := []struct {
			name     string
			probe    *corev1.Probe
			wantPath string // "" for a gRPC probe
			wantPort int32
		}{
			{"readiness", c.ReadinessProbe, "/readyz", 8080},
			{"liveness", c.LivenessProbe, "/healthz", 8080},
			{"startup", c.StartupProbe, "", 50051},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.probe == nil {
					t.Fatal("missing")
				}
				var port intstr.IntOrString
				switch {
				case tt.wantPath != "" && tt.probe.HTTPGet != nil:
					if tt.probe.HTTPGet.Path != tt.wantPath {
						t.Errorf("path %q, want %q", tt.probe.HTTPGet.Path, tt.wantPath)
					}
					port = tt.probe.HTTPGet.Port
				case tt.wantPath == "" && tt.probe.GRPC != nil:
					port = intstr.FromInt32(tt.probe.GRPC.Port)
				default:
					t.Fatalf("want an HTTP probe on %q or a gRPC probe, got %+v", tt.wantPath, tt.probe.ProbeHandler)
				}
				n, ok := portOf(port)
				if !ok || n != tt.wantPort {
					t.Errorf("port %s resolves to %d (declared %v), want %d", port.String(), n, ok, tt.wantPort)
				}
			})
		}
	})
}

func TestDeploymentSecurityAndResources(t *testing.T) {
	eachDir(t, func(t *testing.T, m manifests) {
		pod := m.deployment.Spec.Template.Spec
		c := container(t, m.deployment)

		psc, sc := pod.SecurityContext, c.SecurityContext
		if psc == nil || sc == nil {
			t.Fatal("pod and container securityContext must both be set")
		}
		checks := []struct {
			what string
			ok   bool
		}{
			{"pod runAsNonRoot", psc.RunAsNonRoot != nil && *psc.RunAsNonRoot},
			{"pod runAsUser non-zero", psc.RunAsUser != nil && *psc.RunAsUser != 0},
			{"pod seccomp RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
			{"container runAsNonRoot", sc.RunAsNonRoot != nil && *sc.RunAsNonRoot},
			{"container readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
			{"container allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
			{"container drops ALL capabilities", sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL") && len(sc.Capabilities.Add) == 0},
			{"no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
		}
		for _, ch := range checks {
			if !ch.ok {
				t.Errorf("%s: not set", ch.what)
			}
		}

		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
			if req.IsZero() || lim.IsZero() {
				t.Errorf("%s: request %s, limit %s: both must be set", r, req.String(), lim.String())
			} else if req.Cmp(lim) > 0 {
				t.Errorf("%s: request %s above limit %s", r, req.String(), lim.String())
			}
		}

		// The Go soft memory limit follows the container's memory limit: the
		// downward API gives the limit (resourceFieldRef with a divisor), the
		// daemon takes server.MemoryLimitFraction of it (README "Kubernetes").
		// The environment is expanded as the kubelet does ($(VAR) of earlier
		// variables) and read by the daemon's own ParseConfig.
		hard := c.Resources.Limits[corev1.ResourceMemory]
		env := containerEnv(t, &c)
		cfg, err := server.ParseConfig("redirectd", c.Args, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		soft, ok := cfg.SoftMemoryLimit(func(k string) string { return env[k] })
		if !ok {
			t.Fatal("no Go soft memory limit: REDIRECTD_MEMORY_LIMIT is not set from the memory limit")
		}
		if want := int64(float64(hard.Value()) * server.MemoryLimitFraction); soft != want {
			t.Errorf("soft memory limit %d bytes, want %d (%.0f%% of the memory limit %s)", soft, want, 100*server.MemoryLimitFraction, hard.String())
		}
		readme, err := os.ReadFile("../../README.md")
		if err != nil {
			t.Fatal(err)
		}
		if pct := fmt.Sprintf("%.0f %%", 100*server.MemoryLimitFraction); !strings.Contains(string(readme), "`GOMEMLIMIT` to "+pct) {
			t.Errorf("README does not recommend GOMEMLIMIT at %s, the fraction the daemon applies", pct)
		}
	})
}

// TestRulesComeFromTheConfigMap follows --rules to the mounted ConfigMap
// and parses the rules it holds with redirectd's own parser.
func TestRulesComeFromTheConfigMap(t *testing.T) {
	m := loadManifests(t, ".")
	pod := m.deployment.Spec.Template.Spec
	c := container(t, m.deployment)

	var rulesPath string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		if v, ok := strings.CutPrefix(a, "--rules="); ok {
			rulesPath = v
		}
	}
	if rulesPath == "" {
		t.Fatalf("no --rules=PATH among args %q", c.Args)
	}

	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if path.Dir(rulesPath) == path.Clean(vm.MountPath) {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil {
		t.Fatalf("--rules=%s is not directly inside any volume mount", rulesPath)
	}
	if mount.SubPath != "" {
		t.Errorf("mount %s uses subPath: ConfigMap updates never reach a subPath file", mount.MountPath)
	}
	var vol *corev1.Volume
	for i, v := range pod.Volumes {
		if v.Name == mount.Name {
			vol = &pod.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap == nil || vol.ConfigMap.Name != m.configMap.Name {
		t.Fatalf("volume %q is not the ConfigMap %q", mount.Name, m.configMap.Name)
	}

	key := path.Base(rulesPath)
	data, ok := m.configMap.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q (keys: %v)", m.configMap.Name, key, keys(m.configMap.Data))
	}
	rules, err := decision.ParseRules("configmap.yaml:data."+key, []byte(data))
	if err != nil {
		t.Fatalf("ConfigMap rules: %v", err)
	}
	if _, problems, err := decision.Build(rules, decision.Options{}); err != nil {
		t.Fatalf("ConfigMap rules: %v", err)
	} else if len(problems) > 0 {
		t.Errorf("ConfigMap rules have warnings: %v", problems)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestSelectorsMatch ties the objects together: each selector selects the
// Deployment's pods, each Service port reaches a container port, the HPA
// scales this Deployment and leaves the PDB room for a drain.
func TestSelectorsMatch(t *testing.T) {
	eachDir(t, func(t *testing.T, m manifests) {
		podLabels := labels.Set(m.deployment.Spec.Template.Labels)

		selectors := map[string]*metav1.LabelSelector{
			"Deployment": m.deployment.Spec.Selector,
			"PDB":        m.pdb.Spec.Selector,
			"Service":    {MatchLabels: m.service.Spec.Selector},
		}
		for owner, ls := range selectors {
			sel, err := metav1.LabelSelectorAsSelector(ls)
			if err != nil {
				t.Errorf("%s selector: %v", owner, err)
				continue
			}
			if sel.Empty() || !sel.Matches(podLabels) {
				t.Errorf("%s selector %q does not select pod labels %v", owner, sel, podLabels)
			}
		}

		c := container(t, m.deployment)
		for _, sp := range m.service.Spec.Ports {
			found := false
			for _, cp := range c.Ports {
				if (sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal == cp.Name) ||
					(sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal == cp.ContainerPort) {
					found = sp.Port == cp.ContainerPort
				}
			}
			if !found {
				t.Errorf("Service port %s (%d → %s) does not reach the same container port", sp.Name, sp.Port, sp.TargetPort.String())
			}
		}

		ref := m.hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != m.deployment.Name || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA scales %s %s/%s, want apps/v1 Deployment/%s", ref.APIVersion, ref.Kind, ref.Name, m.deployment.Name)
		}
		if m.hpa.Spec.MinReplicas == nil {
			t.Fatal("HPA minReplicas not set")
		}
		min := *m.hpa.Spec.MinReplicas
		if m.pdb.Spec.MinAvailable == nil || int32(m.pdb.Spec.MinAvailable.IntValue()) >= min {
			t.Errorf("PDB minAvailable %v must be below HPA minReplicas %d, or no node could ever drain", m.pdb.Spec.MinAvailable, min)
		}
		if min > m.hpa.Spec.MaxReplicas {
			t.Errorf("HPA minReplicas %d above maxReplicas %d", min, m.hpa.Spec.MaxReplicas)
		}
		if len(m.hpa.Spec.Metrics) == 0 {
			t.Error("HPA has no metrics")
		}
	})
}

// TestTerminationGraceCoversDrain: the kubelet SIGKILLs a pod
// terminationGracePeriodSeconds after SIGTERM, so the period must be
// longer than redirectd's drain delay and shutdown timeout together, read
// from the container's args and environment by the daemon's own parser.
func TestTerminationGraceCoversDrain(t *testing.T) {
	eachDir(t, func(t *testing.T, m manifests) {
		c := container(t, m.deployment)
		env := containerEnv(t, &c)
		cfg, err := server.ParseConfig("redirectd", c.Args, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			t.Fatalf("container %s's args %q: %v", c.Name, c.Args, err)
		}
		grace := m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
		if grace == nil {
			t.Fatal("terminationGracePeriodSeconds is not set; the default 30 s must be a choice, not an accident")
		}
		need := cfg.DrainDelay + cfg.ShutdownTimeout
		if got := time.Duration(*grace) * time.Second; got <= need {
			t.Errorf("terminationGracePeriodSeconds %v is not above --drain-delay %v + --shutdown-timeout %v", got, cfg.DrainDelay, cfg.ShutdownTimeout)
		}
		if cfg.DrainDelay <= 0 {
			t.Errorf("--drain-delay %v: a pod must keep serving while the endpoint update spreads", cfg.DrainDelay)
		}
	})
}

// TestEtcdExample ties the etcd example together: every endpoint
// redirectd is given is a Service of the example that reaches the etcd
// members' client port, and the StatefulSet forms a three-member cluster
// whose members find each other through its headless Service.
func TestEtcdExample(t *testing.T) {
	m := loadManifests(t, "etcd")
	c := container(t, m.deployment)
	env := containerEnv(t, &c)
	cfg, err := server.ParseConfig("redirectd", c.Args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("redirectd args %q: %v", c.Args, err)
	}
	if cfg.Store != "etcd" {
		t.Fatalf("redirectd runs with --store %q, want etcd", cfg.Store)
	}
	sts := m.etcd
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("etcd StatefulSet replicas %v, want 3 (a quorum survives the loss of one)", sts.Spec.Replicas)
	}
	ec := sts.Spec.Template.Spec.Containers
	if len(ec) != 1 {
		t.Fatalf("etcd pod has %d containers, want 1", len(ec))
	}
	ports := map[string]int32{}
	for _, p := range ec[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	etcdPods := labels.Set(sts.Spec.Template.Labels)
	selects := func(svc *corev1.Service) bool {
		return len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(etcdPods)
	}

	for _, ep := range strings.Split(cfg.EtcdEndpoints, ",") {
		u, err := url.Parse(ep)
		if err != nil {
			t.Fatalf("--etcd-endpoints %q: %v", ep, err)
		}
		svc := m.etcdServices[u.Hostname()]
		if svc == nil {
			t.Errorf("--etcd-endpoints %s: no Service %q in the example (have %v)", ep, u.Hostname(), slices.Sorted(maps.Keys(m.etcdServices)))
			continue
		}
		if !selects(svc) {
			t.Errorf("Service %s does not select the etcd pods %v", svc.Name, etcdPods)
		}
		reached := false
		for _, sp := range svc.Spec.Ports {
			if strconv.Itoa(int(sp.Port)) == u.Port() && sp.TargetPort.StrVal == "client" && ports["client"] != 0 {
				reached = true
			}
		}
		if !reached {
			t.Errorf("--etcd-endpoints %s: Service %s has no port %s reaching the etcd container's client port", ep, svc.Name, u.Port())
		}
	}

	peers := m.etcdServices[sts.Spec.ServiceName]
	if peers == nil || peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses || !selects(peers) {
		t.Fatalf("StatefulSet serviceName %q: want a headless Service selecting the etcd pods and publishing them before they are ready", sts.Spec.ServiceName)
	}
	var cluster string
	for _, a := range ec[0].Args {
		if v, ok := strings.CutPrefix(a, "--initial-cluster="); ok {
			cluster = v
		}
	}
	var want []string
	for i := range 3 {
		member := fmt.Sprintf("%s-%d", sts.Name, i)
		want = append(want, fmt.Sprintf("%s=http://%s.%s:%d", member, member, peers.Name, ports["peer"]))
	}
	if cluster != strings.Join(want, ",") {
		t.Errorf("etcd --initial-cluster=%s, want %s", cluster, strings.Join(want, ","))
	}
}

// containerEnv is c's environment as the kubelet gives it: downward-API
// memory limits in whole divisors (rounded up), then $(VAR) references to
// earlier variables expanded. For GOMEMLIMIT it is an error.
func containerEnv(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	hard := c.Resources.Limits[corev1.ResourceMemory]
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Name == "GOMEMLIMIT":
			t.Errorf("GOMEMLIMIT is set (%q): it would not follow the memory limit", e.Value)
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			ref := e.ValueFrom.ResourceFieldRef
			if ref.Resource != "limits.memory" || ref.ContainerName != c.Name || ref.Divisor.IsZero() {
				t.Fatalf("%s: resourceFieldRef %+v; want limits.memory of container %s with a divisor", e.Name, ref, c.Name)
			}
			env[e.Name] = fmt.Sprint((hard.Value() + ref.Divisor.Value() - 1) / ref.Divisor.Value())
		default:
			v := e.Value
			for name, val := range env {
				v = strings.ReplaceAll(v, "$("+name+")", val)
			}
			env[e.Name] = v
		}
	}
	return env
}
