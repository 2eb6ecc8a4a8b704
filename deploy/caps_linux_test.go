package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// exporterRun is what one run of the exporter served.
type exporterRun struct {
	// failed is the collectors whose success was 0, and "start" when the
	// exporter exited before serving.
	failed []string
	// unavailable is the counter sources it could not read.
	unavailable []string
	// collectors is every collector that reported.
	collectors []string
	// netns is the watched namespaces (netns label values) that had a
	// netdrop_netns_stage_drops_total series: with --all-netns, the
	// namespaces the exporter could find and enter.
	netns  []string
	stderr string
}

// lost is what run r lacks that the full run had.
func (r exporterRun) lost(full exporterRun) []string {
	if slices.Contains(r.failed, "start") {
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		return []string{"start: " + lines[len(lines)-1]}
	}
	var out []string
	out = append(out, r.failed...)
	for _, u := range r.unavailable {
		if !slices.Contains(full.unavailable, u) {
			out = append(out, "source "+u)
		}
	}
	for _, c := range full.collectors {
		if !slices.Contains(r.collectors, c) {
			out = append(out, "collector "+c+" missing")
		}
	}
	for _, n := range full.netns {
		if !slices.Contains(r.netns, n) {
			out = append(out, "netns "+n+" missing")
		}
	}
	return out
}

// runExporter runs `netdrop` with args as root whose capabilities are
// exactly caps (setpriv empties the bounding set but for them, so the
// process has no other), scrapes it twice (findings need an interval) and
// returns what the second scrape said. Of the per-namespace series it
// records those of the namespaces labelled as in watch.
func runExporter(t *testing.T, args []string, caps []corev1.Capability, watch []string) exporterRun {
	t.Helper()
	setpriv := requireTool(t, "setpriv", "util-linux")
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + strings.ToLower(string(c))
	}
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	var full []string
	for _, a := range args {
		if strings.HasPrefix(a, "--listen=") {
			a = "--listen=127.0.0.1:0"
		}
		full = append(full, a)
	}
	full = append(full, "--ready-file="+ready, "--debug")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, append([]string{"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=" + bounding, netdropBinary(t)}, full...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	var addr string
	for addr == "" {
		select {
		case <-exited:
			exited <- nil
			return exporterRun{failed: []string{"start"}, stderr: stderr.String()}
		case <-time.After(50 * time.Millisecond):
		}
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			addr = strings.TrimSpace(string(b))
		}
		if ctx.Err() != nil {
			t.Fatalf("exporter did not serve: %s", stderr.String())
		}
	}
	scrape := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	scrape()
	time.Sleep(time.Second)
	r := exporterRun{stderr: stderr.String()}
	sc := bufio.NewScanner(strings.NewReader(scrape()))
	for sc.Scan() {
		if m := netnsDrops.FindStringSubmatch(sc.Text()); m != nil && slices.Contains(watch, m[1]) && !slices.Contains(r.netns, m[1]) {
			r.netns = append(r.netns, m[1])
		}
		name, label, value, ok := sample(sc.Text())
		if !ok {
			continue
		}
		switch name {
		case "netdrop_scrape_collector_success":
			r.collectors = append(r.collectors, label)
			if value != 1 {
				r.failed = append(r.failed, "collector "+label)
			}
		case "netdrop_source_unavailable":
			if value == 1 {
				r.unavailable = append(r.unavailable, label)
			}
		}
	}
	return r
}

// netnsDrops matches a series of netdrop_netns_stage_drops_total and
// captures its netns label.
var netnsDrops = regexp.MustCompile(`^netdrop_netns_stage_drops_total\{.*\bnetns="([^"]*)"`)

// sample splits `name{label="value"} 1` (one label) into its parts.
func sample(line string) (name, label string, value float64, ok bool) {
	open, end := strings.IndexByte(line, '{'), strings.LastIndexByte(line, '}')
	if open < 0 || end < open || strings.HasPrefix(line, "#") {
		return "", "", 0, false
	}
	_, lv, found := strings.Cut(line[open+1:end], "=")
	if !found {
		return "", "", 0, false
	}
	lv, err := strconv.Unquote(lv)
	if err != nil {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
	if err != nil {
		return "", "", 0, false
	}
	return line[:open], lv, v, true
}

// symbolsNeedSyslog says whether reading kernel addresses from
// /proc/kallsyms needs CAP_SYSLOG here: with kptr_restrict 0 it does only
// when perf_event_paranoid is above 1; with 1 it always does.
func symbolsNeedSyslog(t *testing.T) bool {
	read := func(p string) int {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	kptr, paranoid := read("/proc/sys/kernel/kptr_restrict"), read("/proc/sys/kernel/perf_event_paranoid")
	return kptr == 1 || kptr == 0 && paranoid > 1
}

// TestCapabilities runs the exporter as the chart configures it, with
// exactly the capabilities the chart grants: every collector and every
// counter source must work as with all of them. Then with each granted
// capability taken away in turn: something must be lost, or the chart
// grants more than the exporter needs.
func TestCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the exporter with chosen capabilities and makes a network namespace")
	}
	ns := fmt.Sprintf("nddeploy%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// A process in the namespace, for --netns pid:N.
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })

	// For --all-netns, a namespace only a process holds (no bind mount,
	// as a pod's seen from the node's /proc), which drops datagrams to a
	// closed port all along: the exporter must find it through the
	// process's /proc/PID/ns/net, enter it and count its drops.
	dropper := exec.Command("unshare", "--net", "bash", "-c",
		`ip link set lo up && while :; do echo x >/dev/udp/127.0.0.1/9; sleep 0.02; done`)
	dropper.Stderr = os.Stderr
	if err := dropper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropper.Process.Kill(); dropper.Wait() })
	dropNetns := processNetns(t, dropper.Process.Pid)

	cases := []struct {
		name, vals string
		// watch are namespaces whose drop series the chart's flags
		// must show.
		watch []string
	}{
		{"host", ``, nil},
		{"trace", `exporter: {trace: true}`, nil},
		{"netns-name", fmt.Sprintf(`exporter: {netns: %s}`, ns), nil},
		{"netns-pid", fmt.Sprintf(`exporter: {netns: "pid:%d"}`, sleeper.Process.Pid), nil},
		{"all-netns", `allNetns: {enabled: true}`, []string{dropNetns}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := render(t, "netdrop", "netdrop", parseValues(t, c.vals))
			ctr := o.daemonSet.Spec.Template.Spec.Containers[0]
			granted := ctr.SecurityContext.Capabilities.Add
			all := runExporter(t, ctr.Args, allCapabilities, c.watch)
			if len(all.failed) > 0 {
				t.Fatalf("with every capability the exporter fails: %v\n%s", all.failed, all.stderr)
			}
			if !slices.Equal(all.netns, c.watch) {
				t.Fatalf("with every capability the exporter shows drops in namespaces %q, want %q\n%s", all.netns, c.watch, all.stderr)
			}
			got := runExporter(t, ctr.Args, granted, c.watch)
			if lost := got.lost(all); len(lost) > 0 {
				t.Errorf("with the chart's capabilities %v the exporter loses %v\n%s", granted, lost, got.stderr)
			}
			for _, cp := range granted {
				if cp == "SYSLOG" && !symbolsNeedSyslog(t) {
					t.Log("this kernel shows kallsyms addresses without CAP_SYSLOG (kptr_restrict 0, perf_event_paranoid <= 1): not checking it is needed")
					continue
				}
				less := slices.DeleteFunc(slices.Clone(granted), func(x corev1.Capability) bool { return x == cp })
				r := runExporter(t, ctr.Args, less, c.watch)
				lost := r.lost(all)
				if len(lost) == 0 {
					t.Errorf("the chart grants %s, but the exporter loses nothing without it", cp)
				}
				t.Logf("without %s: loses %v", cp, lost)
			}
		})
	}
}

// allCapabilities is every capability this test runs with as the baseline
// (the capabilities a root container could be given that the exporter
// could use).
var allCapabilities = []corev1.Capability{"NET_ADMIN", "NET_RAW", "BPF", "PERFMON", "SYSLOG", "SYS_ADMIN", "SYS_PTRACE", "SYS_RESOURCE", "DAC_OVERRIDE", "DAC_READ_SEARCH", "IPC_LOCK"}

// processNetns is the netns label the exporter gives the network namespace
// of process pid once it has left the test's own: net:[INODE].
func processNetns(t *testing.T, pid int) string {
	t.Helper()
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			t.Fatal(err)
		}
		if l != self {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("process %d did not leave the test's network namespace", pid)
	return ""
}
