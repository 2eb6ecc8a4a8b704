package tune

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

func mem(values map[string]string) *MemSystem {
	return &MemSystem{Values: values, ReadOnly: map[string]bool{}, Fail: map[string]bool{}}
}

func sysctl(name string) Setting { return Setting{Kind: diagnose.ChangeSysctl, Target: name} }

// finding is a finding whose fixes are the settings changes.
func finding(st stage.ID, title string, changes ...diagnose.Change) diagnose.Finding {
	f := diagnose.Finding{Stage: st, Severity: diagnose.Critical, Title: title, Changes: changes}
	for i := range changes {
		f.Fix = append(f.Fix, diagnose.Fix{Kind: diagnose.FixSetting, Change: &changes[i], Command: changes[i].Command()})
	}
	return f
}

func change(name, proposed string) diagnose.Change {
	return diagnose.Change{Kind: diagnose.ChangeSysctl, Target: name, Proposed: proposed}
}

// skips returns each item's setting with its skip reason cut to the first
// few words, so the table says which rule fired without repeating prose.
func skips(p *Plan) map[string]string {
	out := map[string]string{}
	for _, it := range p.Items {
		s := it.Skip
		if i := strings.IndexAny(s, ":("); i > 0 {
			s = s[:i]
		}
		out[it.Setting.String()] = strings.TrimSpace(s)
	}
	return out
}

func TestBuildVetsChanges(t *testing.T) {
	sys := mem(map[string]string{
		"sysctl net.core.somaxconn":             "4096\n",
		"sysctl net.ipv4.tcp_tw_recycle":        "0\n",
		"sysctl net.netfilter.nf_conntrack_max": "262144\n",
		"sysctl net.ipv4.conf.all.rp_filter":    "1\n",
		"sysctl net.ipv4.tcp_syncookies":        "1\n",
		"sysctl net.ipv4.udp_mem":               "1\t2\t3\n",
		"sysctl net.core.rmem_max":              "212992\n",
		"sysctl net.core.netdev_max_backlog":    "1000\n",
		"txqueuelen veth0":                      "1000",
		"sysctl net.ipv4.ip_forward":            "0\n",
	})
	sys.ReadOnly["sysctl net.core.rmem_max"] = true
	r := &diagnose.Report{Netns: "t", Findings: []diagnose.Finding{
		finding(stage.Softirq, "backlog", change("net.core.netdev_max_backlog", "10000")),
		finding(stage.TCPListen, "accept queue", change("net.core.somaxconn", "8192"), change("net.ipv4.tcp_syncookies", "1")),
		finding(stage.Ports, "ports", change("net.ipv4.tcp_tw_recycle", "1")),
		finding(stage.Conntrack, "conntrack", change("net.netfilter.nf_conntrack_max", "0")),
		finding(stage.IP, "rpf", change("net.ipv4.conf.all.rp_filter", "2")),
		finding(stage.SocketRcvbuf, "udp mem", change("net.ipv4.udp_mem", "<min> <pressure> <max>"), change("net.core.rmem_max", "4194304"), change("net.core.nosuch", "1")),
		finding(stage.Qdisc, "qdisc", diagnose.Change{Kind: diagnose.ChangeTxQueueLen, Target: "veth0", Proposed: "100"}),
		finding(stage.IP, "forward", change("net.ipv4.ip_forward", "1")),
	}}
	p := Build(r, sys, Context{})
	want := map[string]string{
		"sysctl net.core.netdev_max_backlog":    "",
		"sysctl net.core.somaxconn":             "",
		"sysctl net.ipv4.tcp_syncookies":        "already set",
		"sysctl net.ipv4.tcp_tw_recycle":        "refused",
		"sysctl net.netfilter.nf_conntrack_max": "refused",
		"sysctl net.ipv4.conf.all.rp_filter":    "refused",
		"sysctl net.ipv4.udp_mem":               "the value is yours to choose",
		"sysctl net.core.rmem_max":              "read-only setting",
		"sysctl net.core.nosuch":                "unknown setting",
		"txqueuelen veth0":                      "refused",
		"sysctl net.ipv4.ip_forward":            "refused",
	}
	if diff := cmp.Diff(want, skips(p)); diff != "" {
		t.Errorf("skip reasons (-want +got):\n%s", diff)
	}
	for _, it := range p.Items {
		if it.Risk == "" {
			t.Errorf("%s has no risk note", it.Setting)
		}
		if it.Setting.Target == "net.core.somaxconn" && it.Current != "4096" {
			t.Errorf("somaxconn current = %q, want the value re-read, 4096", it.Current)
		}
	}
}

func TestBuildInfoFindingNotApplied(t *testing.T) {
	sys := mem(map[string]string{"sysctl net.ipv4.tcp_max_syn_backlog": "512\n"})
	f := finding(stage.TCP, "SYN retransmissions", change("net.ipv4.tcp_max_syn_backlog", "8192"))
	f.Severity = diagnose.Info
	p := Build(&diagnose.Report{Findings: []diagnose.Finding{f}}, sys, Context{})
	if len(p.Items) != 1 || p.Items[0].Actionable() || !strings.HasPrefix(p.Items[0].Skip, "informational finding") {
		t.Errorf("info finding items = %+v, want one skipped as informational", p.Items)
	}
}

func TestBuildRPFilterNeedsEvidence(t *testing.T) {
	sys := mem(map[string]string{"sysctl net.ipv4.conf.all.rp_filter": "1\n"})
	f := finding(stage.IP, "rpf", change("net.ipv4.conf.all.rp_filter", "2"))
	f.Evidence = []diagnose.Evidence{{Source: counters.ProcNetNetstat, Field: "TcpExt:IPReversePathFilter", Delta: 12}}
	p := Build(&diagnose.Report{Findings: []diagnose.Finding{f}}, sys, Context{})
	if len(p.Actionable()) != 1 {
		t.Fatalf("rp_filter=2 with IPReversePathFilter drops: want 1 actionable item, got %+v", p.Items)
	}
	f.Fix[0].Change.Proposed = "0"
	p = Build(&diagnose.Report{Findings: []diagnose.Finding{f}}, sys, Context{})
	if len(p.Actionable()) != 0 || !strings.Contains(p.Items[0].Skip, "source validation") {
		t.Fatalf("rp_filter=0 must be refused even with evidence, got %+v", p.Items)
	}
}

func TestBuildMergesDuplicateSettings(t *testing.T) {
	sys := mem(map[string]string{"sysctl net.core.rmem_max": "212992\n"})
	r := &diagnose.Report{Findings: []diagnose.Finding{
		finding(stage.SocketRcvbuf, "udp", change("net.core.rmem_max", "8388608")),
		finding(stage.SocketRcvbuf, "tcp", change("net.core.rmem_max", "33554432")),
	}}
	p := Build(r, sys, Context{})
	if len(p.Items) != 1 {
		t.Fatalf("want one item for two findings asking the same setting, got %d", len(p.Items))
	}
	if diff := cmp.Diff(Item{
		Setting: sysctl("net.core.rmem_max"), Current: "212992", Proposed: "33554432",
		Stage: stage.SocketRcvbuf, Severity: diagnose.Critical, Finding: "udp; tcp", Risk: p.Items[0].Risk,
	}, p.Items[0]); diff != "" {
		t.Errorf("merged item (-want +got):\n%s", diff)
	}
}

func TestSomaxconnCheck(t *testing.T) {
	tests := []struct {
		name      string
		ls        []Listener
		skip      bool
		note, sub string
	}{
		{name: "capped by somaxconn", ls: []Listener{{Local: "0.0.0.0:80", Backlog: 128, Drops: 5}}, note: "somaxconn caps the backlog of 0.0.0.0:80"},
		{name: "application backlog", ls: []Listener{{Local: "0.0.0.0:80", Backlog: 4, Drops: 5}}, skip: true, sub: "belongs in the application"},
		{name: "both", ls: []Listener{{Local: "a:1", Backlog: 4, Drops: 5}, {Local: "b:2", Backlog: 128, Drops: 1}}, note: "helps b:2"},
		{name: "no dropping listener", ls: []Listener{{Local: "a:1", Backlog: 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skip, note, inApp := somaxconnCheck("128", tt.ls)
			if (skip != "") != tt.skip || inApp != tt.skip {
				t.Errorf("skip = %q, want skip %v", skip, tt.skip)
			}
			if tt.sub != "" && !strings.Contains(skip, tt.sub) {
				t.Errorf("skip = %q, want it to contain %q", skip, tt.sub)
			}
			if !strings.HasPrefix(note, tt.note) {
				t.Errorf("note = %q, want prefix %q", note, tt.note)
			}
		})
	}
}

func TestBuildApplicationNote(t *testing.T) {
	sys := mem(map[string]string{"sysctl net.core.somaxconn": "4096\n"})
	f := finding(stage.TCPListen, "accept queue full", change("net.core.somaxconn", "8192"))
	f.Advice = "accept faster"
	p := Build(&diagnose.Report{Findings: []diagnose.Finding{f}}, sys, Context{Listeners: []Listener{{Local: "10.0.0.1:80", Backlog: 16, Drops: 3}}})
	if len(p.Actionable()) != 0 {
		t.Fatalf("backlog 16 < somaxconn 4096: somaxconn must not be changed, got %+v", p.Items)
	}
	var got []string
	for _, a := range p.Application {
		got = append(got, a.Advice[:min(len(a.Advice), 34)])
	}
	want := []string{"accept faster", "the fix belongs in the application"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("application notes (-want +got):\n%s", diff)
	}
}

func planOf(items ...Item) *Plan { return &Plan{Netns: "t", Items: items} }

func item(s Setting, proposed string) Item { return Item{Setting: s, Proposed: proposed} }

func TestApplyAndRollback(t *testing.T) {
	orig := map[string]string{
		"sysctl net.core.somaxconn":           "4096\n",
		"sysctl net.ipv4.ip_local_port_range": "32768\t60999\n",
	}
	sys := mem(copyMap(orig))
	path := filepath.Join(t.TempDir(), "rb.json")
	res, err := Apply(planOf(item(sysctl("net.core.somaxconn"), "8192"), item(sysctl("net.ipv4.ip_local_port_range"), "1024 65535")), sys, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 2 || sys.Values["sysctl net.core.somaxconn"] != "8192" {
		t.Fatalf("apply: %+v, values %v", res, sys.Values)
	}
	rb, err := ReadRollback(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RollbackFrom(sys, rb); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig, sys.Values); diff != "" {
		t.Errorf("after rollback (-want +got):\n%s", diff)
	}
	// A second apply must not overwrite the first rollback file.
	if _, err := Apply(planOf(item(sysctl("net.core.somaxconn"), "8192")), sys, path); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("apply over an existing rollback file: err = %v, want 'exists'", err)
	}
}

func TestApplyFailureRollsBack(t *testing.T) {
	orig := map[string]string{
		"sysctl net.core.rmem_max":  "1\n",
		"sysctl net.core.wmem_max":  "2\n",
		"sysctl net.core.somaxconn": "3\n",
	}
	sys := mem(copyMap(orig))
	sys.Fail["sysctl net.core.somaxconn"] = true
	path := filepath.Join(t.TempDir(), "rb.json")
	_, err := Apply(planOf(item(sysctl("net.core.rmem_max"), "10"), item(sysctl("net.core.wmem_max"), "20"), item(sysctl("net.core.somaxconn"), "30")), sys, path)
	if err == nil || !strings.Contains(err.Error(), "change 3 of 3 failed") || !strings.Contains(err.Error(), "2 changes made were rolled back") {
		t.Fatalf("err = %v, want change 3 failed and 2 rolled back", err)
	}
	if diff := cmp.Diff(orig, sys.Values); diff != "" {
		t.Errorf("values after a failed apply (-want +got):\n%s", diff)
	}
	want := []string{"sysctl net.core.rmem_max=10", "sysctl net.core.wmem_max=20", "sysctl net.core.wmem_max=2\n", "sysctl net.core.rmem_max=1\n"}
	if diff := cmp.Diff(want, sys.Writes); diff != "" {
		t.Errorf("writes, undo in reverse order (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a fully undone apply leaves no stale rollback file: stat = %v", err)
	}
}

func TestApplyChecksBeforeChanging(t *testing.T) {
	sys := mem(map[string]string{"sysctl net.core.rmem_max": "1\n", "sysctl net.core.netdev_budget": "5\n"})
	sys.ReadOnly["sysctl net.core.netdev_budget"] = true
	path := filepath.Join(t.TempDir(), "rb.json")
	_, err := Apply(planOf(item(sysctl("net.core.rmem_max"), "10"), item(sysctl("net.core.netdev_budget"), "6"), item(sysctl("net.core.rmem_default"), "1")), sys, path)
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("err = %v, want ErrReadOnly and nothing changed", err)
	}
	if len(sys.Writes) != 0 {
		t.Errorf("writes = %v, want none", sys.Writes)
	}
}

func TestParseRollbackErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", "hello", "not a netdrop rollback file"},
		{"version", `{"version":9,"entries":[]}`, "version 9"},
		{"kind", `{"version":1,"entries":[{"setting":{"kind":"bogus","target":"x"},"raw":"MQ=="}]}`, `unknown change kind "bogus"`},
		{"target", `{"version":1,"entries":[{"setting":{"kind":"sysctl"},"raw":"MQ=="}]}`, "no target"},
		{"unknown field", `{"version":1,"entries":[],"extra":1}`, "not a netdrop rollback file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRollback([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzParseRollback(f *testing.F) {
	f.Add([]byte(`{"version":1,"netns":"x","entries":[{"setting":{"kind":"sysctl","target":"net.core.somaxconn"},"raw":"NDA5Ngo=","value":"4096","applied":"8192"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rb, err := parseRollback(b)
		if err == nil && rb.Version != RollbackVersion {
			t.Fatalf("accepted version %d", rb.Version)
		}
	})
}

func TestSysctlPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"net.core.somaxconn", "net/core/somaxconn", true},
		{"net/ipv4/conf/eth0.100/rp_filter", "net/ipv4/conf/eth0.100/rp_filter", true},
		{"net.ipv4.conf.eth-0.rp_filter", "net/ipv4/conf/eth-0/rp_filter", true},
		{"../../etc/passwd", "", false},
		{"net/../../etc", "", false},
		{"net..core", "", false},
		{"somaxconn", "", false},
		{"net.core.x y", "", false},
	}
	for _, tt := range tests {
		got, err := sysctlPath(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrUnknown) {
			t.Errorf("sysctlPath(%q): error %v does not wrap ErrUnknown", tt.in, err)
		}
	}
}

func TestWritePersist(t *testing.T) {
	p := &Plan{Netns: "web", Items: []Item{
		{Setting: sysctl("net.core.somaxconn"), Current: "128", Proposed: "4096", Stage: stage.TCPListen, Finding: "accept queue full", Risk: "memory"},
		{Setting: sysctl("net.ipv4.tcp_tw_recycle"), Proposed: "1", Skip: "refused"},
		{Setting: Setting{Kind: diagnose.ChangeRing, Target: "eth0", Param: "rx"}, Current: "256", Proposed: "4096"},
	}}
	var b bytes.Buffer
	if err := WritePersist(&b, p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"\nnet.core.somaxconn = 4096\n", "namespace web", "#   ring eth0 rx = 4096 (was 256)"} {
		if !strings.Contains(out, want) {
			t.Errorf("persist output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "tcp_tw_recycle =") {
		t.Errorf("persist output holds a refused setting:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "60-netdrop.conf")
	if err := Persist(path, p); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, b.Bytes()) {
		t.Errorf("Persist wrote %q (%v), want %q", got, err, out)
	}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// FuzzSysctlPath: whatever the name, the path stays below /proc/sys.
func FuzzSysctlPath(f *testing.F) {
	for _, s := range []string{"net.core.somaxconn", "net/ipv4/conf/eth0.100/rp_filter", "../x", "a..b", "a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := sysctlPath(name)
		if err != nil {
			return
		}
		if clean := filepath.Clean("/proc/sys/" + rel); !strings.HasPrefix(clean, "/proc/sys/") || clean != "/proc/sys/"+rel {
			t.Fatalf("sysctlPath(%q) = %q escapes or is not clean", name, rel)
		}
	})
}

func TestBuildHostWideInNamespace(t *testing.T) {
	sys := mem(map[string]string{"sysctl net.core.netdev_max_backlog": "1000\n", "sysctl net.core.somaxconn": "128\n"})
	host := finding(stage.Softirq, "backlog", change("net.core.netdev_max_backlog", "10000"))
	host.HostWide = true
	local := finding(stage.TCPListen, "accept", change("net.core.somaxconn", "4096"))
	r := &diagnose.Report{Netns: "web", Findings: []diagnose.Finding{host, local}}
	p := Build(r, sys, Context{})
	if diff := cmp.Diff(map[string]string{"sysctl net.core.netdev_max_backlog": "host-wide finding", "sysctl net.core.somaxconn": ""}, skips(p)); diff != "" {
		t.Errorf("skips (-want +got):\n%s", diff)
	}
	// On the host itself (diagnose labels it counters.CurrentNetns), both apply, and
	// the plan names no namespace.
	r.Netns = counters.CurrentNetns().String()
	p = Build(r, sys, Context{})
	if p.Netns != "" || len(p.Actionable()) != 2 {
		t.Errorf("host plan: netns %q, %d actionable, want \"\" and 2", p.Netns, len(p.Actionable()))
	}
}
