package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// fixtureSummary is a socket view recorded with sockets.Summarize in a test
// namespace: a listener with backlog 4 holding 5 unaccepted connections,
// and 25 TIME_WAIT plus 3 established client sockets toward one server.
func fixtureSummary(t testing.TB) func(context.Context, sockets.Options) (*sockets.Summary, error) {
	t.Helper()
	b, err := os.ReadFile("testdata/sockets-summary.json")
	if err != nil {
		t.Fatal(err)
	}
	return func(_ context.Context, opts sockets.Options) (*sockets.Summary, error) {
		var s sockets.Summary
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		return &s, nil
	}
}

// recordedNetlink replays the link and qdisc counters that netdrop
// counters --json read over netlink on a real host, stored beside the /proc
// files of the same fixture tree (netlink has no files to point FS at).
type recordedNetlink struct{}

func (recordedNetlink) ID() counters.SourceID { return counters.NetlinkLinkStats }

func (recordedNetlink) Collect(_ context.Context, r *counters.Reading, s *counters.Snapshot) error {
	b, err := os.ReadFile(filepath.Join(r.FS.Proc, "..", "netlink-counters.json"))
	if err != nil {
		return err
	}
	var cs []counters.Counter
	if err := json.Unmarshal(b, &cs); err != nil {
		return err
	}
	s.Add(cs...)
	return nil
}

// fixtureSources are the sources of the fixture trees: /proc files copied
// from real hosts, and the recorded netlink counters.
func fixtureSources() []counters.Source {
	return []counters.Source{
		counters.SNMPSource{}, counters.SoftnetSource{}, counters.CPUStatSource{}, counters.InterruptsSource{},
		counters.SockstatSource{}, counters.ConntrackSource{}, counters.NeighSource{}, recordedNetlink{},
	}
}

// fakeClock advances 10 s per snapshot, so rates in the golden file are
// deterministic.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(10 * time.Second)
	return c.t
}

// scrapeText serves the registry over HTTP, as Prometheus reads it.
func scrapeText(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	return string(b)
}

var durationLine = regexp.MustCompile(`(?m)^(netdrop_scrape_collector_duration_seconds\{[^}]*\}) \S+$`)

// normalize replaces the only values that depend on the machine running the
// test: how long each collector took.
func normalize(s string) string { return durationLine.ReplaceAllString(s, "$1 <duration>") }

// fixtureExporter scrapes the "before" tree, then serves the "later" tree:
// the second scrape is the one a dashboard would see, with drops attributed.
func fixtureScrapes(t testing.TB) (first, second string) {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}
	opts := Options{
		FS:        counters.NewFS("testdata/before"),
		Sources:   fixtureSources(),
		Summarize: fixtureSummary(t),
		Now:       clock.now,
		Top:       5,
		// The listen overflow is declared intended: its finding is info
		// and expected, its drops still in the stage totals.
		Expect: []diagnose.Expect{{Stage: stage.TCPListen}},
		Build:  buildinfo.Info{Version: "v0.1.0", Revision: "0123456789abcdef", GoVersion: "go1.26.8", Platform: "linux/amd64"},
	}
	reg, e, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(reg, opts)
	first = scrapeText(t, h)
	e.opts.FS = counters.NewFS("testdata/later")
	second = scrapeText(t, h)
	return first, second
}

func TestGoldenMetrics(t *testing.T) {
	_, second := fixtureScrapes(t)
	got := normalize(second)
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./exporter -run TestGoldenMetrics -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("/metrics differs from %s (-want +got); if the change is intended, rerun with -update:\n%s", golden, diff)
	}
}

// sample returns the value of one series in an exposition, or fails.
func sample(t testing.TB, text, series string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	t.Fatalf("no series %s in\n%s", series, text)
	return ""
}

// TestFixtureValues checks the meaning of the golden file independently of
// it: the fixtures' "later" tree has 500 more Udp RcvbufErrors and 30 more
// ListenOverflows/ListenDrops than "before", 10 s apart.
func TestFixtureValues(t *testing.T) {
	first, second := fixtureScrapes(t)
	tests := []struct{ text, series, want string }{
		{first, `netdrop_stage_drops_total{stage="socket-rcvbuf"}`, "0"},
		{second, `netdrop_stage_drops_total{stage="socket-rcvbuf"}`, "500"},
		{second, `netdrop_stage_drops_total{stage="tcp-listen"}`, "30"},
		{second, `netdrop_stage_drops_total{stage="nic"}`, "0"},
		{second, `netdrop_stage_interval_seconds`, "10"},
		{second, `netdrop_findings{severity="critical",stage="socket-rcvbuf"}`, "1"},
		{second, `netdrop_findings_worst_severity`, "3"},
		{second, `netdrop_kernel_drops_total{field="Udp:RcvbufErrors",object="",scope="netns",source="` + string(counters.ProcNetSNMP) + `",stage="socket-rcvbuf"}`, "698"},
		{second, `netdrop_nf_conntrack_entries`, "1200"},
		{second, `netdrop_nf_conntrack_entries_limit`, "262144"},
		{second, `netdrop_tcp_listen_queue{listen="10.231.1.2:8080"}`, "5"},
		{second, `netdrop_tcp_listen_backlog{listen="10.231.1.2:8080"}`, "4"},
		{second, `netdrop_tcp_listen_queue_fill_ratio{listen="10.231.1.2:8080"}`, "1.25"},
		{second, `netdrop_tcp_destination_time_wait_sockets{destination="10.231.1.1:7070"}`, "25"},
		{second, `netdrop_tcp_time_wait_sockets{side="client"}`, "25"},
		{second, `netdrop_scrape_collector_success{collector="sockets"}`, "1"},
	}
	for _, tt := range tests {
		if got := sample(t, tt.text, tt.series); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.series, got, tt.want)
		}
	}
	if strings.Contains(first, "netdrop_findings{") {
		t.Errorf("the first scrape has no interval and must not claim findings either way")
	}
	if strings.Contains(second, "netdrop_stage_drop_rate") {
		t.Errorf("rates are rate()'s job, not a series")
	}
}

// TestNodeExporterShapes checks the families that carry node_exporter's
// names against the fixture files themselves, read here independently of
// package counters: the values are the kernel's, in node_exporter's units.
func TestNodeExporterShapes(t *testing.T) {
	_, second := fixtureScrapes(t)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "later", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// /proc/stat: cpu0's softirq column (the 7th) in USER_HZ ticks.
	var softirq0 float64
	for _, l := range strings.Split(read("proc/stat"), "\n") {
		if f := strings.Fields(l); len(f) > 7 && f[0] == "cpu0" {
			fmt.Sscan(f[7], &softirq0)
		}
	}
	// /proc/interrupts: the virtio3-rx line summed over its CPU columns.
	var irqLine string
	var irqSum uint64
	for _, l := range strings.Split(read("proc/interrupts"), "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && strings.HasSuffix(l, "virtio3-rx") {
			irqLine = strings.TrimSuffix(f[0], ":")
			for _, c := range f[1:3] {
				var v uint64
				fmt.Sscan(c, &v)
				irqSum += v
			}
		}
	}
	// softnet_stat: cpu1's second column (dropped), hex.
	var softnetDropped uint64
	if lines := strings.Split(read("proc/net/softnet_stat"), "\n"); len(lines) > 1 {
		fmt.Sscanf(strings.Fields(lines[1])[1], "%x", &softnetDropped)
	}
	// The recorded netlink counters: eth0's rx_dropped + rx_missed_errors.
	var cs []counters.Counter
	if err := json.Unmarshal([]byte(read("netlink-counters.json")), &cs); err != nil {
		t.Fatal(err)
	}
	var rxDrop, txPackets uint64
	for _, c := range cs {
		if c.Object == "eth0" && (c.Field == "rx_dropped" || c.Field == "rx_missed_errors") {
			rxDrop += c.Value
		}
		if c.Object == "eth0" && c.Field == "tx_packets" {
			txPackets = c.Value
		}
	}
	tests := []struct{ series, want string }{
		{`netdrop_cpu_seconds_total{cpu="0",mode="softirq"}`, strconv.FormatFloat(softirq0/100, 'g', -1, 64)},
		{`netdrop_interrupts_total{devices="virtio3-rx",irq="` + irqLine + `"}`, strconv.FormatUint(irqSum, 10)},
		{`netdrop_softnet_dropped_total{cpu="1"}`, strconv.FormatUint(softnetDropped, 10)},
		{`netdrop_network_receive_drop_total{device="eth0"}`, strconv.FormatUint(rxDrop, 10)},
		{`netdrop_network_transmit_packets_total{device="eth0",stage=""}`, strconv.FormatUint(txPackets, 10)},
	}
	for _, tt := range tests {
		got, err := strconv.ParseFloat(sample(t, second, tt.series), 64)
		want, _ := strconv.ParseFloat(tt.want, 64)
		if err != nil || got != want {
			t.Errorf("%s = %v, want %s (from the fixture files)", tt.series, got, tt.want)
		}
	}
}

func requirePromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		// CI installs it (.ci/run): there a missing promtool is a
		// broken setup, not a reason to skip.
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no promtool (Debian package prometheus)")
		}
		t.Skip("needs promtool (Debian package prometheus: apt-get install prometheus)")
	}
	return p
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := requirePromtool(t)
	_, second := fixtureScrapes(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(second)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestPromtoolCheckMetricsHost lints what the exporter serves on the host
// running the test, from the running kernel: every interface, qdisc, IRQ and
// MIB field this machine has, the second scrape with its findings.
func TestPromtoolCheckMetricsHost(t *testing.T) {
	promtool := requirePromtool(t)
	opts := Options{}
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(reg, opts)
	scrapeText(t, h)
	text := scrapeText(t, h)
	if !strings.Contains(text, "netdrop_kernel_events_total{") {
		t.Fatalf("no kernel counters read from this host:\n%.2000s", text)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on this host's output: %v\n%s", err, out)
	}
}

func TestPromtoolRules(t *testing.T) {
	promtool := requirePromtool(t)
	for _, args := range [][]string{
		{"check", "rules", "netdrop-rules.yml"},
		{"test", "rules", "netdrop-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Join("..", "..", "deploy", "prometheus")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// metricNames lists the metric names an exposition holds.
func metricNames(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			out[strings.Fields(line)[2]] = true
		}
	}
	return out
}

var metricRef = regexp.MustCompile(`\bnetdrop_[a-z0-9_]+`)

// TestDeployReferencesExist keeps the dashboard and the rules in step with
// the exporter: every netdrop_ metric they query must be one it serves, and
// every stage label they name must be a stage.
func TestDeployReferencesExist(t *testing.T) {
	_, second := fixtureScrapes(t)
	names := metricNames(second)
	// The trace series exist only with a tracer.
	tr := &fakeTracer{snaps: []droptrace.Snapshot{{Rows: []droptrace.Row{row("NO_SOCKET", "x+0x1", stage.NoSocket, 1)}, Noise: []droptrace.Row{row("NOT_SPECIFIED", "y+0x1", "", 1)}}}}
	topts := traceOpts(tr, 0)
	treg, _, _ := NewRegistry(topts)
	for n := range metricNames(scrapeText(t, Handler(treg, topts))) {
		names[n] = true
	}
	for n := range allNetnsNames(t) {
		names[n] = true
	}
	files := []string{"../../deploy/grafana/netdrop-dashboard.json", "../../deploy/prometheus/netdrop-rules.yml"}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricRef.FindAllString(string(b), -1) {
			if !names[m] {
				t.Errorf("%s queries %s, which the exporter does not serve", f, m)
			}
		}
		for _, m := range regexp.MustCompile(`stage\\?="([a-z-]+)\\?"`).FindAllStringSubmatch(string(b), -1) {
			if !stage.Valid(stage.ID(m[1])) {
				t.Errorf("%s names unknown stage %q", f, m[1])
			}
		}
	}
	// The dashboard shows every stage of the packet path, in path order.
	var dash struct {
		Panels []struct {
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, _ := os.ReadFile(files[0])
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var got []string
	for _, p := range dash.Panels {
		if p.Type != "stat" {
			continue
		}
		m := regexp.MustCompile(`stage="([a-z-]+)"`).FindStringSubmatch(p.Targets[0].Expr)
		got = append(got, m[1])
	}
	var want []string
	for _, s := range stage.All() {
		want = append(want, string(s.ID))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dashboard stat panels, in path order (-want +got):\n%s", diff)
	}
}

// allNetnsNames is the names of the per-namespace series, which exist only
// with --all-netns: one namespace whose readings show datagrams to no
// socket and a conntrack table nearly full, scraped twice, so that both
// its drop and its finding series are served.
func allNetnsNames(t *testing.T) map[string]bool {
	t.Helper()
	src := &scriptedSource{readings: [][]counters.Counter{
		append([]counters.Counter{mib("Udp:NoPorts", 5)}, conntrackLevel(60000, 65536)...),
		append([]counters.Counter{mib("Udp:NoPorts", 9)}, conntrackLevel(60000, 65536)...),
	}}
	clock := time.Unix(1_800_000_000, 0)
	c := hostOnlyCollector(src, &clock)
	scrapeNetns(t, c)
	clock = clock.Add(15 * time.Second)
	out := map[string]bool{}
	for _, l := range scrapeNetns(t, c) {
		out[l[:strings.IndexByte(l, '{')]] = true
	}
	for _, want := range []string{"netdrop_netns_stage_drops_total", "netdrop_netns_findings"} {
		if !out[want] {
			t.Fatalf("the per-namespace fixture serves no %s: %v", want, out)
		}
	}
	return out
}

func TestDaemonSet(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/netdrop-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"kind: DaemonSet", "hostNetwork: true", "readOnlyRootFilesystem: true", `add: ["NET_ADMIN"]`, `drop: ["ALL"]`, "- exporter", "--listen=$(POD_IP):9469", "allowPrivilegeEscalation: false"} {
		if !strings.Contains(s, want) {
			t.Errorf("daemonset lacks %q", want)
		}
	}
	if strings.Contains(s, "privileged: true") {
		t.Error("daemonset must not run privileged")
	}
}

// TestCollectorFailureIsContained: a collector that fails costs its own
// metrics and reports success 0; the scrape and the other collectors go on.
func TestCollectorFailureIsContained(t *testing.T) {
	opts := Options{
		FS:      counters.NewFS("testdata/before"),
		Sources: []counters.Source{counters.SNMPSource{}},
		Summarize: func(context.Context, sockets.Options) (*sockets.Summary, error) {
			return nil, errors.New("sock_diag: permission denied")
		},
	}
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	text := scrapeText(t, Handler(reg, opts))
	want := map[string]string{"counters": "1", "stages": "1", "findings": "1", "conntrack": "1", "sockets": "0"}
	for c, v := range want {
		if got := sample(t, text, fmt.Sprintf(`netdrop_scrape_collector_success{collector="%s"}`, c)); got != v {
			t.Errorf("collector %s success = %s, want %s", c, got, v)
		}
	}
	if strings.Contains(text, "netdrop_tcp_listen") {
		t.Error("a failed socket collector must not export socket series")
	}

	// A missing counter tree fails the counters collector and, with it,
	// the stage attribution; conntrack files missing is no failure.
	opts.FS = counters.NewFS(t.TempDir())
	reg, _, _ = NewRegistry(opts)
	text = scrapeText(t, Handler(reg, opts))
	for c, v := range map[string]string{"counters": "0", "stages": "1", "conntrack": "1"} {
		if got := sample(t, text, fmt.Sprintf(`netdrop_scrape_collector_success{collector="%s"}`, c)); got != v {
			t.Errorf("empty tree: collector %s success = %s, want %s", c, got, v)
		}
	}
	if got := sample(t, text, `netdrop_source_unavailable{source="`+string(counters.ProcNetSNMP)+`"}`); got != "1" {
		t.Errorf("unavailable source = %s, want 1", got)
	}
}

// TestCardinalityBounded: hundreds of destinations and listeners, some
// sharing an address (SO_REUSEPORT), give at most Top series each, no
// duplicate series, and totals that show the cut.
func TestCardinalityBounded(t *testing.T) {
	sum := &sockets.Summary{DestinationsTotal: 300, ListenersTotal: 400}
	for i := 0; i < 300; i++ {
		sum.Destinations = append(sum.Destinations, sockets.Destination{
			Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i / 256), byte(i)}), 443), TimeWait: i,
		})
	}
	for i := 0; i < 400; i++ {
		sum.Listeners = append(sum.Listeners, sockets.Listener{
			Local: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(8000+i/2)), Queued: 1, Backlog: 10, Fill: 0.1, Drops: 1,
		})
	}
	opts := Options{
		FS:        counters.NewFS("testdata/before"),
		Sources:   []counters.Source{counters.SNMPSource{}},
		Summarize: func(context.Context, sockets.Options) (*sockets.Summary, error) { return sum, nil },
		Top:       7,
	}
	reg, _, _ := NewRegistry(opts)
	text := scrapeText(t, Handler(reg, opts))
	count := func(prefix string) int { return strings.Count(text, "\n"+prefix+"{") }
	for _, m := range []string{"netdrop_tcp_destination_time_wait_sockets", "netdrop_tcp_destination_port_use_ratio", "netdrop_tcp_listen_queue", "netdrop_tcp_listen_drops_total"} {
		if n := count(m); n != 7 {
			t.Errorf("%s: %d series, want 7", m, n)
		}
	}
	// Two listeners share each port: queues add up.
	if got := sample(t, text, `netdrop_tcp_listen_queue{listen="127.0.0.1:8000"}`); got != "2" {
		t.Errorf("shared listener queue = %s, want 2", got)
	}
	if got := sample(t, text, "netdrop_tcp_listeners"); got != "400" {
		t.Errorf("listeners total = %s, want 400", got)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l[:strings.LastIndex(l, " ")])
		}
	}
	sort.Strings(lines)
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			t.Errorf("duplicate series %s", lines[i])
		}
	}
}

func TestLandingPage(t *testing.T) {
	opts := Options{Netns: counters.NamedNetns("<web>"), FS: counters.NewFS("testdata/before"), Sources: []counters.Source{counters.SNMPSource{}}, NoSockets: true}
	reg, _, _ := NewRegistry(opts)
	srv := httptest.NewServer(Handler(reg, opts))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`href="/metrics"`)) || bytes.Contains(b, []byte("<web>")) {
		t.Errorf("landing page:\n%s", b)
	}
	resp, _ = http.Get(srv.URL + "/nope")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %s, want 404", resp.Status)
	}
}
