package deploy

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite kubernetes/netdrop-daemonset.yaml from the chart")

const (
	chartDir  = "helm/netdrop"
	rulesFile = "prometheus/netdrop-rules.yml"
	plainFile = "kubernetes/netdrop-daemonset.yaml"
)

// valueSets are the configurations the tests render: the defaults, and
// every option on at once, once per kind of --netns.
var valueSets = []struct {
	name string
	vals string
}{
	{"defaults", ``},
	{"everything", `
job: nd
exporter:
  expect: ["netfilter:policy-drop", "socket-rcvbuf"]
  trace: true
  netns: web
  noSockets: true
  debug: true
  extraArgs: ["--top=20"]
  interfaces: {include: "^(eth|ens)", exclude: "^(veth|cali|lxc)"}
  irqs: {exclude: "virtio.*-tx"}
  maxSeries: 5000
  otlp:
    url: http://otel-collector.monitoring:4318
    interval: 30s
    headers:
      - {name: Authorization, secretName: otlp-auth, secretKey: header}
webConfig:
  secretName: netdrop-web
allNetns:
  enabled: true
serviceMonitor:
  enabled: true
  labels: {release: kube-prometheus-stack}
  scheme: https
  tlsConfig: {insecureSkipVerify: true}
prometheusRule:
  enabled: true
  labels: {release: kube-prometheus-stack}
`},
	{"netns-pid", `
exporter:
  netns: pid:1
serviceMonitor: {enabled: true}
prometheusRule: {enabled: true}
`},
	{"all-netns-crio", `
allNetns:
  enabled: true
  criSocket: /var/run/crio/crio.sock
`},
}

// objects is a rendered chart, decoded strictly: a field the API type does
// not have (a typo, a wrong level) fails the decoding.
type objects struct {
	vals           map[string]any
	namespace      string
	daemonSet      *appsv1.DaemonSet
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	serviceMonitor *monitoringv1.ServiceMonitor
	prometheusRule *monitoringv1.PrometheusRule
	// docs are the rendered documents in kind order, for the plain manifest.
	docs []string
}

func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("values: %v", err)
	}
	return v
}

// render renders the chart as `helm template NAME --namespace NS` would.
func render(t *testing.T, release, namespace string, vals map[string]any) *objects {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	o := &objects{vals: rv["Values"].(common.Values), namespace: namespace}
	var names []string
	for name := range out {
		names = append(names, name)
	}
	sort.Strings(names)
	order := map[string]int{"ServiceAccount": 0, "Service": 1, "DaemonSet": 2, "ServiceMonitor": 3, "PrometheusRule": 4}
	type doc struct {
		kind, text string
	}
	var docs []doc
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			continue
		}
		for _, d := range strings.Split(out[name], "\n---") {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(d), &meta); err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, d)
			}
			if meta.Kind == "" {
				if strings.TrimSpace(stripComments(d)) != "" {
					t.Fatalf("%s: a document without a kind:\n%s", name, d)
				}
				continue
			}
			var dst any
			switch meta.Kind {
			case "DaemonSet":
				o.daemonSet = &appsv1.DaemonSet{}
				dst = o.daemonSet
			case "Service":
				o.service = &corev1.Service{}
				dst = o.service
			case "ServiceAccount":
				o.serviceAccount = &corev1.ServiceAccount{}
				dst = o.serviceAccount
			case "ServiceMonitor":
				o.serviceMonitor = &monitoringv1.ServiceMonitor{}
				dst = o.serviceMonitor
			case "PrometheusRule":
				o.prometheusRule = &monitoringv1.PrometheusRule{}
				dst = o.prometheusRule
			default:
				t.Fatalf("%s: unexpected kind %s", name, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(d), dst); err != nil {
				t.Fatalf("%s: %s does not decode strictly: %v", name, meta.Kind, err)
			}
			docs = append(docs, doc{meta.Kind, strings.TrimSpace(d)})
		}
	}
	sort.SliceStable(docs, func(i, j int) bool { return order[docs[i].kind] < order[docs[j].kind] })
	for _, d := range docs {
		o.docs = append(o.docs, d.text)
	}
	return o
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestChartLint runs Helm's own linter (what `helm lint` runs) with the
// defaults and with every option on.
func TestChartLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			l := lint.RunAll(chartDir, parseValues(t, vs.vals), "netdrop")
			for _, m := range l.Messages {
				// INFO is advice (an icon in Chart.yaml); warnings and errors fail.
				if m.Severity > support.InfoSev {
					t.Error(m)
				} else {
					t.Log(m)
				}
			}
		})
	}
}

// TestChartObjects renders the chart and checks what an operator relies on:
// a DaemonSet on the host network with a read-only root, no token and only
// the capabilities its flags need; a Service, ServiceMonitor and pod that
// select each other; one job name from the ServiceMonitor to the alerts.
func TestChartObjects(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			o := render(t, "nd-test", "monitoring", parseValues(t, vs.vals))
			checkObjects(t, o)
		})
	}
}

func checkObjects(t *testing.T, o *objects) {
	t.Helper()
	ds, svc, sa := o.daemonSet, o.service, o.serviceAccount
	if ds == nil || svc == nil || sa == nil {
		t.Fatalf("want a DaemonSet, a Service and a ServiceAccount; got %v %v %v", ds != nil, svc != nil, sa != nil)
	}
	exp := o.vals["exporter"].(map[string]any)
	netnsFlag, _ := exp["netns"].(string)
	allNetns := o.vals["allNetns"].(map[string]any)["enabled"] == true
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork {
		t.Error("the exporter must run in the node's network namespace (hostNetwork)")
	}
	if want := strings.HasPrefix(netnsFlag, "pid:") || allNetns; pod.HostPID != want {
		t.Errorf("hostPID = %v, want %v (only --netns pid:N and --all-netns need the node's processes)", pod.HostPID, want)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a service account token")
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("the service account must not automount its token")
	}
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("pod runs as service account %q, chart makes %q", pod.ServiceAccountName, sa.Name)
	}
	sel, err := metaSelector(ds.Spec.Selector.MatchLabels)
	if err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("DaemonSet selector %v does not match its pods %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem must be read-only")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("must not run privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities must drop ALL, got %+v", sc.Capabilities)
	}
	wantCaps := []corev1.Capability{"NET_ADMIN"}
	if exp["trace"] == true {
		wantCaps = append(wantCaps, "BPF", "PERFMON", "SYSLOG")
	}
	if netnsFlag != "" || allNetns {
		wantCaps = append(wantCaps, "SYS_ADMIN")
	}
	if strings.HasPrefix(netnsFlag, "pid:") || allNetns {
		wantCaps = append(wantCaps, "SYS_PTRACE")
	}
	if diff := cmp.Diff(wantCaps, sc.Capabilities.Add); diff != "" {
		t.Errorf("added capabilities (-want +got):\n%s", diff)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("want cpu and memory requests and a memory limit, got %+v", c.Resources)
	}
	if len(c.Args) == 0 || c.Args[0] != "exporter" {
		t.Errorf("args %q do not run the exporter", c.Args)
	}
	if !slices.Contains(c.Args, fmt.Sprintf("--listen=$(POD_IP):%v", o.vals["port"])) {
		t.Errorf("args %q do not listen on the node's address and the chart's port", c.Args)
	}
	for _, e := range exp["expect"].([]any) {
		if !slices.Contains(c.Args, fmt.Sprintf("--expect=%s", e)) {
			t.Errorf("args %q lack --expect=%s", c.Args, e)
		}
	}
	checkExporterArgs(t, c.Args)
	checkArgSources(t, o, pod, c)
	checkAllNetns(t, o, pod, c)
	var metricsPort *corev1.ContainerPort
	for i, p := range c.Ports {
		if p.Name == "metrics" {
			metricsPort = &c.Ports[i]
		}
	}
	if metricsPort == nil || fmt.Sprint(metricsPort.ContainerPort) != fmt.Sprint(o.vals["port"]) {
		t.Errorf("container ports %+v lack metrics on port %v", c.Ports, o.vals["port"])
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if p == nil || p.TCPSocket == nil || p.TCPSocket.Port.String() != "metrics" {
			t.Errorf("probe %+v: want a TCP check of the metrics port (it passes with TLS and basic auth)", p)
		}
	}

	// The Service selects the pods, by the port name the container has.
	ssel, _ := metaSelector(svc.Spec.Selector)
	if !ssel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not match the pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("want a headless Service to the metrics port, got %+v", svc.Spec)
	}

	job := o.vals["job"].(string)
	if sm := o.serviceMonitor; sm != nil {
		msel, err := metaSelector(sm.Spec.Selector.MatchLabels)
		if err != nil || !msel.Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor selector %v does not match the Service %v", sm.Spec.Selector.MatchLabels, svc.Labels)
		}
		if got := svc.Labels[sm.Spec.JobLabel]; got != job {
			t.Errorf("ServiceMonitor jobLabel %q gives job %q, want %q", sm.Spec.JobLabel, got, job)
		}
		if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, o.namespace) {
			t.Errorf("ServiceMonitor looks in %v, not in the release namespace %s", sm.Spec.NamespaceSelector.MatchNames, o.namespace)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
			t.Errorf("ServiceMonitor endpoints %+v do not scrape the Service's port %s", sm.Spec.Endpoints, svc.Spec.Ports[0].Name)
		}
	}
	if pr := o.prometheusRule; pr != nil {
		checkRulesAreTheFile(t, pr, job)
	}
}

func metaSelector(m map[string]string) (labels.Selector, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(m), nil
}

// checkRulesAreTheFile: the PrometheusRule's groups are netdrop-rules.yml's,
// with the alerts' job the chart's, and promtool accepts them.
func checkRulesAreTheFile(t *testing.T, pr *monitoringv1.PrometheusRule, job string) {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(`job="netdrop"`), []byte(fmt.Sprintf("job=%q", job)))
	var file monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &file); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(file.Groups) == 0 {
		t.Fatalf("%s holds no groups", rulesFile)
	}
	if diff := cmp.Diff(file, pr.Spec); diff != "" {
		t.Errorf("PrometheusRule differs from %s (-file +chart):\n%s", rulesFile, diff)
	}
	down := false
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "NetdropExporterDown" {
				down = strings.Contains(r.Expr.String(), fmt.Sprintf("job=%q", job))
			}
		}
	}
	if !down {
		t.Errorf("NetdropExporterDown does not select job %q", job)
	}
	promtoolCheckRules(t, pr.Spec)
}

// promtoolCheckRules runs promtool check rules on a rule file's content.
func promtoolCheckRules(t *testing.T, spec monitoringv1.PrometheusRuleSpec) {
	t.Helper()
	promtool := requireTool(t, "promtool", "prometheus")
	b, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
}

// requireTool finds a program or skips; under CI=true a missing tool fails.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs %s (Debian package %s), which CI installs", name, pkg)
		}
		t.Skipf("needs %s (Debian package %s)", name, pkg)
	}
	return p
}

var flagName = regexp.MustCompile(`^--([a-z][a-z0-9.-]*)`)

// checkExporterArgs: every flag the chart passes is one `netdrop exporter`
// has (its --help lists them).
func checkExporterArgs(t *testing.T, args []string) {
	t.Helper()
	help, err := exec.Command(netdropBinary(t), "exporter", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("netdrop exporter --help: %v\n%s", err, help)
	}
	for _, a := range args[1:] {
		m := flagName.FindStringSubmatch(a)
		if m == nil {
			t.Errorf("argument %q is not a flag", a)
			continue
		}
		if !regexp.MustCompile(`(?m)^\s+(-\w, )?--` + regexp.QuoteMeta(m[1]) + `\b`).Match(help) {
			t.Errorf("netdrop exporter has no flag --%s", m[1])
		}
	}
}

// TestPlainManifest: kubernetes/netdrop-daemonset.yaml is the chart rendered
// with its defaults as release netdrop in namespace netdrop, plus the
// namespace, so the two ways to deploy cannot drift. go test -update
// rewrites it.
func TestPlainManifest(t *testing.T) {
	o := render(t, "netdrop", "netdrop", parseValues(t, ""))
	checkObjects(t, o)
	var b strings.Builder
	b.WriteString(`# netdrop exporter on every node, for kubectl apply -f. GENERATED from the
# Helm chart in deploy/helm/netdrop with its default values (release netdrop,
# namespace netdrop); edit the chart, then run: cd deploy && go test -run TestPlainManifest -update
#
# Prometheus scrapes it with the job in deploy/prometheus/scrape-kubernetes.yml
# (job="netdrop", what the alerts select); with the Prometheus Operator, use
# the chart and its ServiceMonitor instead.
apiVersion: v1
kind: Namespace
metadata:
  name: netdrop
`)
	for _, d := range o.docs {
		b.WriteString("---\n" + d + "\n")
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(plainFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(plainFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s is not the chart's rendering; run go test -run TestPlainManifest -update (-file +chart):\n%s", plainFile, diff)
	}
}

// TestScrapeConfig: the scrape job for the plain manifests is named as the
// alerts' job and keeps exactly the DaemonSet's pods and port.
func TestScrapeConfig(t *testing.T) {
	b, err := os.ReadFile("prometheus/scrape-kubernetes.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName             string `json:"job_name"`
			ScrapeInterval      string `json:"scrape_interval"`
			KubernetesSDConfigs []struct {
				Role       string `json:"role"`
				Namespaces struct {
					Names []string `json:"names"`
				} `json:"namespaces"`
				Selectors []struct {
					Role  string `json:"role"`
					Label string `json:"label"`
				} `json:"selectors"`
			} `json:"kubernetes_sd_configs"`
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
				TargetLabel  string   `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 || len(cfg.ScrapeConfigs[0].KubernetesSDConfigs) != 1 {
		t.Fatalf("want one job with one kubernetes_sd_config, got %+v", cfg)
	}
	job := cfg.ScrapeConfigs[0]
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rules), fmt.Sprintf("up{job=%q}", job.JobName)) {
		t.Errorf("the alerts do not select the scrape job %q", job.JobName)
	}
	o := render(t, "netdrop", "netdrop", parseValues(t, ""))
	if job.JobName != o.vals["job"] {
		t.Errorf("scrape job %q, chart's job %q", job.JobName, o.vals["job"])
	}
	sd := job.KubernetesSDConfigs[0]
	if sd.Role != "pod" || !slices.Equal(sd.Namespaces.Names, []string{o.daemonSet.Namespace}) {
		t.Errorf("want pods of namespace %s, got %+v", o.daemonSet.Namespace, sd)
	}
	for _, s := range sd.Selectors {
		sel, err := labels.Parse(s.Label)
		if err != nil {
			t.Fatal(err)
		}
		if !sel.Matches(labels.Set(o.daemonSet.Spec.Template.Labels)) {
			t.Errorf("selector %q does not match the DaemonSet's pods %v", s.Label, o.daemonSet.Spec.Template.Labels)
		}
	}
	kept := false
	for _, r := range job.RelabelConfigs {
		if r.Action == "keep" && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_container_port_name"}) {
			kept = regexp.MustCompile("^(?:" + r.Regex + ")$").MatchString(o.daemonSet.Spec.Template.Spec.Containers[0].Ports[0].Name)
		}
	}
	if !kept {
		t.Error("the scrape job does not keep the exporter's metrics port")
	}
	for _, a := range o.daemonSet.Spec.Template.Annotations {
		t.Errorf("the DaemonSet's pods carry annotation %q: annotation discovery would scrape them under a second job", a)
	}
}

// checkArgSources: what the args refer to exists in the pod: the web
// configuration file in a mounted Secret, each $(VAR) an environment
// variable (OTLP headers from Secrets, the node's address).
func checkArgSources(t *testing.T, o *objects, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, a := range c.Args {
		for _, m := range regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`).FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("argument %q refers to $(%s), which the container does not define", a, m[1])
			}
		}
		if strings.HasPrefix(a, "--otlp-header=") {
			v := env[regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`).FindStringSubmatch(a)[1]]
			if v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil {
				t.Errorf("OTLP header %q does not come from a Secret", a)
			}
		}
		file, ok := strings.CutPrefix(a, "--web.config.file=")
		if !ok {
			continue
		}
		web := o.vals["webConfig"].(map[string]any)
		found := false
		for _, vm := range c.VolumeMounts {
			rel, err := filepath.Rel(vm.MountPath, file)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			for _, v := range pod.Volumes {
				if v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == web["secretName"] && rel == web["key"] {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("--web.config.file %s is not the key %v of a mounted Secret %v", file, web["key"], web["secretName"])
		}
	}
	if web := o.vals["webConfig"].(map[string]any); web["secretName"] != "" && !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--web.config.file=") }) {
		t.Error("webConfig.secretName is set but the exporter gets no --web.config.file")
	}
}

// checkAllNetns: with allNetns.enabled the exporter gets --all-netns and a
// --cri-socket that is the configured node socket as the container sees it,
// through a read-only hostPath mount of the socket's directory; without it,
// neither flag and no hostPath but the named namespaces' /run/netns.
func checkAllNetns(t *testing.T, o *objects, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	vals := o.vals["allNetns"].(map[string]any)
	enabled := vals["enabled"] == true
	if got := slices.Contains(c.Args, "--all-netns"); got != enabled {
		t.Errorf("--all-netns in args = %v, want %v (allNetns.enabled)", got, enabled)
	}
	var sockets []string
	for _, a := range c.Args {
		if s, ok := strings.CutPrefix(a, "--cri-socket="); ok {
			sockets = append(sockets, s)
		}
	}
	hostPaths := map[string]string{} // volume name: node path
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	if !enabled {
		if len(sockets) > 0 {
			t.Errorf("--cri-socket %q without allNetns.enabled", sockets)
		}
		for name, p := range hostPaths {
			if p != "/run/netns" {
				t.Errorf("hostPath volume %s (%s) without allNetns.enabled", name, p)
			}
		}
		return
	}
	if len(sockets) != 1 {
		t.Fatalf("want one --cri-socket with allNetns.enabled, got %q", sockets)
	}
	// The socket as the node sees it: the node path of the mount that
	// holds it, and the rest of its path below the mount.
	var onNode string
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, sockets[0])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		node, ok := hostPaths[vm.Name]
		if !ok {
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("the CRI socket's mount %s is writable", vm.MountPath)
		}
		if rel != filepath.Base(sockets[0]) {
			t.Errorf("the mount %s holds the socket %s below its top directory: mount the socket's directory", vm.MountPath, sockets[0])
		}
		onNode = filepath.Join(node, rel)
	}
	if want := vals["criSocket"]; onNode != want {
		t.Errorf("--cri-socket=%s is %q on the node, want allNetns.criSocket %q", sockets[0], onNode, want)
	}
}

// TestChartRefusesUnknownValues: values.schema.json refuses a misspelt key
// or a wrong type, which Helm would otherwise ignore or render.
func TestChartRefusesUnknownValues(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`exporter: {trac: true}`,
		`serviceMonitr: {enabled: true}`,
		`port: "9469"`,
		`exporter: {otlp: {headers: [{name: Authorization}]}}`,
		`allNetns: {enable: true}`,
		`allNetns: {enabled: "true"}`,
		`allNetns: {criSocket: containerd.sock}`,
		`allNetns: {criSocket: /run/containerd/}`,
	} {
		_, err := util.ToRenderValues(ch, parseValues(t, bad), common.ReleaseOptions{Name: "netdrop", Namespace: "netdrop"}, nil)
		if err == nil {
			t.Errorf("values %s accepted", bad)
		}
	}
}
