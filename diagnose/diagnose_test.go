package diagnose

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// snap builds a snapshot from counters and sysctls.
func snap(sysctls map[string]string, cs ...counters.Counter) *counters.Snapshot {
	s := &counters.Snapshot{Sysctls: sysctls, CPUs: 2}
	s.Add(cs...)
	return s
}

func ctr(source counters.SourceID, object, field string, v uint64, st stage.ID) counters.Counter {
	return counters.Counter{Source: source, Object: object, Field: field, Value: v, Stage: st}
}

func gauge(source counters.SourceID, object, field string, v uint64) counters.Counter {
	return counters.Counter{Source: source, Object: object, Field: field, Value: v, Gauge: true}
}

var sys = map[string]string{
	"net.core.rmem_max":              "212992",
	"net.core.rmem_default":          "212992",
	"net.core.netdev_max_backlog":    "1000",
	"net.core.somaxconn":             "4096",
	"net.ipv4.ip_local_port_range":   "32768\t60999",
	"net.ipv4.tcp_tw_reuse":          "2",
	"net.netfilter.nf_conntrack_max": "1000",
}

func TestAnalyzeTopFinding(t *testing.T) {
	const snmp, netstat = counters.ProcNetSNMP, counters.ProcNetNetstat
	tests := []struct {
		name      string
		a, b      []counters.Counter
		wantStage stage.ID
		wantSev   Severity
		wantDrops uint64
		wantFix   string // a fix line that must appear
	}{
		{
			name:      "udp receive buffer",
			a:         []counters.Counter{ctr(snmp, "", "Udp:RcvbufErrors", 100, stage.SocketRcvbuf), ctr(snmp, "", "Udp:InErrors", 100, "")},
			b:         []counters.Counter{ctr(snmp, "", "Udp:RcvbufErrors", 4310, stage.SocketRcvbuf), ctr(snmp, "", "Udp:InErrors", 4310, "")},
			wantStage: stage.SocketRcvbuf, wantSev: Critical, wantDrops: 4210,
			wantFix: "sysctl -w net.core.rmem_max=26214400  # now 212992; the ceiling for SO_RCVBUF",
		},
		{
			name: "softnet backlog wraps at 32 bits",
			a: []counters.Counter{
				{Source: counters.ProcNetSoftnetStat, Object: "cpu1", Field: "dropped", Value: 0xfffffff0, Stage: stage.Softirq, Bits: 32, HostWide: true},
			},
			b: []counters.Counter{
				{Source: counters.ProcNetSoftnetStat, Object: "cpu1", Field: "dropped", Value: 0x10, Stage: stage.Softirq, Bits: 32, HostWide: true},
			},
			wantStage: stage.Softirq, wantSev: Critical, wantDrops: 0x20,
			wantFix: "sysctl -w net.core.netdev_max_backlog=10000  # now 1000",
		},
		{
			name: "listen overflow counted once through ListenDrops",
			a: []counters.Counter{
				ctr(netstat, "", "TcpExt:ListenOverflows", 5, stage.TCPListen), ctr(netstat, "", "TcpExt:ListenDrops", 5, stage.TCPListen),
			},
			b: []counters.Counter{
				ctr(netstat, "", "TcpExt:ListenOverflows", 55, stage.TCPListen), ctr(netstat, "", "TcpExt:ListenDrops", 55, stage.TCPListen),
			},
			wantStage: stage.TCPListen, wantSev: Critical, wantDrops: 50,
			wantFix: "sysctl -w net.core.somaxconn=8192  # now 4096; caps every listen() backlog",
		},
		{
			name: "qdisc drops outrank the Udp SndbufErrors that repeat them",
			a: []counters.Counter{
				ctr(counters.NetlinkQdisc, "veth0 tbf 1:", "drops", 0, stage.Qdisc), ctr(snmp, "", "Udp:SndbufErrors", 0, stage.TxSocket),
			},
			b: []counters.Counter{
				ctr(counters.NetlinkQdisc, "veth0 tbf 1:", "drops", 900, stage.Qdisc), ctr(snmp, "", "Udp:SndbufErrors", 900, stage.TxSocket),
			},
			wantStage: stage.Qdisc, wantSev: Critical, wantDrops: 900,
			wantFix: "tc -s qdisc show dev veth0  # the configured rate and limit",
		},
		{
			name: "conntrack table full",
			a: []counters.Counter{
				ctr(counters.ProcNetStatConntrack, "", "drop", 0, stage.Conntrack), gauge(counters.ProcSysConntrackCount, "", "nf_conntrack_count", 1000),
				gauge(counters.ProcSysConntrackMax, "", "nf_conntrack_max", 1000),
			},
			b: []counters.Counter{
				ctr(counters.ProcNetStatConntrack, "", "drop", 5000, stage.Conntrack), gauge(counters.ProcSysConntrackCount, "", "nf_conntrack_count", 1000),
				gauge(counters.ProcSysConntrackMax, "", "nf_conntrack_max", 1000),
			},
			wantStage: stage.Conntrack, wantSev: Critical, wantDrops: 5000,
			wantFix: "sysctl -w net.netfilter.nf_conntrack_max=262144  # now 1000",
		},
		{
			name:      "unknown counter with a stage still becomes a finding",
			a:         []counters.Counter{ctr(counters.EthtoolStats, "eth0", "rx_weird_drop", 1, stage.RxRing)},
			b:         []counters.Counter{ctr(counters.EthtoolStats, "eth0", "rx_weird_drop", 41, stage.RxRing)},
			wantStage: stage.RxRing, wantSev: Critical, wantDrops: 40,
		},
		{
			name:      "time-wait near the port range",
			a:         []counters.Counter{gauge(counters.ProcNetSockstat, "", "TCP:tw", 28000)},
			b:         []counters.Counter{gauge(counters.ProcNetSockstat, "", "TCP:tw", 28000)},
			wantStage: stage.Ports, wantSev: Critical, wantDrops: 0,
			wantFix: "sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"  # now 32768 60999; 28232 ports",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := snap(sys, tt.a...), snap(sys, tt.b...)
			r := Analyze(a, b, 5*time.Second)
			if len(r.Findings) == 0 {
				t.Fatalf("no findings; want %s", tt.wantStage)
			}
			top := r.Findings[0]
			if top.Stage != tt.wantStage || top.Severity != tt.wantSev || top.Drops != tt.wantDrops {
				t.Errorf("top finding = %s/%s/%d, want %s/%s/%d (%+v)", top.Stage, top.Severity, top.Drops, tt.wantStage, tt.wantSev, tt.wantDrops, r.Findings)
			}
			if tt.wantFix != "" && !contains(top.Fix, tt.wantFix) {
				t.Errorf("fix %q missing from %q", tt.wantFix, fixLines(top.Fix))
			}
			if len(r.Stages) != len(stage.All()) {
				t.Errorf("%d stages listed, want every stage (%d)", len(r.Stages), len(stage.All()))
			}
		})
	}
}

// contains says whether one of fixes reads line, rendered as the text
// report prints a command ("command  # now X; note"), or is advice with
// that text.
func contains(fixes []Fix, line string) bool {
	for _, f := range fixes {
		if fixLine(f) == line {
			return true
		}
	}
	return false
}

func fixLine(f Fix) string {
	if f.Command == "" {
		return f.Text
	}
	var c []string
	if f.Now != "" {
		c = append(c, "now "+f.Now)
	}
	if f.Note != "" {
		c = append(c, f.Note)
	}
	if len(c) == 0 {
		return f.Command
	}
	return f.Command + "  # " + strings.Join(c, "; ")
}

func fixLines(fixes []Fix) []string {
	var out []string
	for _, f := range fixes {
		out = append(out, fixLine(f))
	}
	return out
}

func TestHealthyHostHasNoFindings(t *testing.T) {
	a := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:RcvbufErrors", 7, stage.SocketRcvbuf))
	b := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:RcvbufErrors", 7, stage.SocketRcvbuf))
	r := Analyze(a, b, time.Second)
	if len(r.Findings) != 0 {
		t.Fatalf("findings on an unchanged host: %+v", r.Findings)
	}
	if _, any := r.Worst(); any {
		t.Error("Worst reports a finding")
	}
}

func TestRankingSeverityThenDrops(t *testing.T) {
	fs := []Finding{
		{Stage: stage.Netfilter, Severity: Warning, Drops: 1000},
		{Stage: stage.SocketRcvbuf, Severity: Critical, Drops: 10},
		{Stage: stage.Softirq, Severity: Critical, Drops: 10},
		{Stage: stage.Qdisc, Severity: Critical, Drops: 500},
		{Stage: stage.TCP, Severity: Info},
	}
	rank(fs)
	var got []stage.ID
	for _, f := range fs {
		got = append(got, f.Stage)
	}
	want := []stage.ID{stage.Qdisc, stage.Softirq, stage.SocketRcvbuf, stage.Netfilter, stage.TCP}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rank (-want +got):\n%s", diff)
	}
}

func TestNamespaceFindingsBeforeHostWide(t *testing.T) {
	softnet := counters.Counter{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Stage: stage.Softirq, HostWide: true}
	noports := ctr(counters.ProcNetSNMP, "", "Udp:NoPorts", 0, stage.NoSocket)
	a := snap(sys, softnet, noports)
	softnet.Value, noports.Value = 5000, 2000
	b := snap(sys, softnet, noports)
	for _, tt := range []struct {
		netns string
		want  stage.ID
	}{{"web", stage.NoSocket}, {counters.CurrentNetns().String(), stage.Softirq}} {
		a.Netns, b.Netns = tt.netns, tt.netns
		r := Analyze(a, b, time.Second)
		if len(r.Findings) != 2 || r.Findings[0].Stage != tt.want {
			t.Errorf("netns %q: findings %+v, want %s first", tt.netns, r.Findings, tt.want)
		}
	}
}

func TestOnceDowngradesHistory(t *testing.T) {
	b := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:RcvbufErrors", 4000, stage.SocketRcvbuf))
	r := Analyze(&counters.Snapshot{}, b, 0)
	if len(r.Findings) != 1 || r.Findings[0].Severity != Warning || r.Findings[0].Drops != 4000 {
		t.Fatalf("since-boot findings = %+v, want one warning with 4000 drops", r.Findings)
	}
}

func TestJSONShape(t *testing.T) {
	a := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:NoPorts", 0, stage.NoSocket))
	b := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:NoPorts", 30, stage.NoSocket))
	b.Unavailable = []counters.Unavailable{{Source: counters.NetlinkNftables, Reason: "permission denied"}}
	r := Analyze(a, b, 2*time.Second)
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		IntervalS float64 `json:"interval_s"`
		Netns     *string `json:"netns"`
		Findings  []struct {
			Stage    string  `json:"stage"`
			Severity string  `json:"severity"`
			Drops    uint64  `json:"drops"`
			Rate     float64 `json:"rate_per_s"`
			Cause    string  `json:"cause"`
			Fix      []struct {
				Kind    string `json:"kind"`
				Command string `json:"command"`
				Note    string `json:"note"`
			} `json:"fix"`
			NotAutomatic string `json:"not_automatic"`
			Evidence     []struct {
				Source string `json:"source"`
				Object string `json:"object"`
				Field  string `json:"field"`
				Delta  uint64 `json:"delta"`
			} `json:"evidence"`
		} `json:"findings"`
		Stages []struct {
			Stage string `json:"stage"`
			Drops uint64 `json:"drops"`
		} `json:"stages"`
		Unavailable []struct{ Source, Reason string } `json:"unavailable"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.IntervalS != 2 || got.Netns == nil || len(got.Findings) != 1 || len(got.Unavailable) != 1 {
		t.Fatalf("json = %s", raw)
	}
	f := got.Findings[0]
	if f.Stage != "no-socket" || f.Severity != "critical" || f.Drops != 30 || f.Rate != 15 || f.Cause == "" || len(f.Fix) == 0 || f.NotAutomatic == "" {
		t.Errorf("finding = %+v", f)
	}
	if fx := f.Fix[0]; fx.Kind != "inspect" || fx.Command != "netdrop sockets --state listen" || fx.Note == "" {
		t.Errorf("fix = %+v, want the command and its note apart", fx)
	}
	if len(f.Evidence) != 1 || f.Evidence[0].Field != "Udp:NoPorts" || f.Evidence[0].Object != "" || f.Evidence[0].Delta != 30 || f.Evidence[0].Source != string(counters.ProcNetSNMP) {
		t.Errorf("evidence = %+v", f.Evidence)
	}
	for i, s := range got.Stages {
		if s.Stage != string(stage.All()[i].ID) {
			t.Errorf("stages[%d] = %s, want %s", i, s.Stage, stage.All()[i].ID)
		}
	}
}

func TestSoftirqConcentratedOnOneCPU(t *testing.T) {
	mk := func(cpu0, cpu1, soft0, tot0, idle1 uint64) *counters.Snapshot {
		s := snap(sys,
			counters.Counter{Source: counters.ProcSoftirqs, Object: "cpu0", Field: "NET_RX", Value: cpu0, HostWide: true},
			counters.Counter{Source: counters.ProcSoftirqs, Object: "cpu1", Field: "NET_RX", Value: cpu1, HostWide: true},
			counters.Counter{Source: counters.ProcStat, Object: "cpu0", Field: "softirq", Value: soft0, HostWide: true},
			counters.Counter{Source: counters.ProcStat, Object: "cpu0", Field: "total", Value: tot0, HostWide: true},
			counters.Counter{Source: counters.ProcStat, Object: "cpu1", Field: "idle", Value: idle1, HostWide: true},
			counters.Counter{Source: counters.ProcStat, Object: "cpu1", Field: "total", Value: tot0, HostWide: true},
		)
		s.NICs = []counters.NIC{{Name: "eth0", RxQueues: 1, RPSCPUs: []string{"0"}, IRQs: []counters.IRQ{{Number: 25, Name: "virtio0-input.0", Affinity: "0"}}}}
		return s
	}
	// cpu1 idles 90% of the interval: the concentration is the problem.
	r := Analyze(mk(0, 0, 0, 0, 0), mk(190000, 100, 400, 500, 450), 5*time.Second)
	var titles []string
	for _, f := range r.Findings {
		titles = append(titles, f.Title)
		if f.Stage != stage.Softirq || f.Severity != Warning {
			t.Errorf("finding %+v, want a softirq warning", f)
		}
	}
	if len(r.Findings) != 2 {
		t.Fatalf("findings: %q, want NET_RX concentration and softirq time", titles)
	}
	if !contains(r.Findings[0].Fix, "echo 3 > /sys/class/net/eth0/queues/rx-0/rps_cpus  # now 0; RPS: spread this queue over all CPUs") {
		t.Errorf("fix = %q", fixLines(r.Findings[0].Fix))
	}
	// cpu1 is as busy (10% idle): the host is short of CPU, and moving
	// receive work onto cpu1 would not help; no concentration finding.
	r = Analyze(mk(0, 0, 0, 0, 0), mk(190000, 100, 400, 500, 50), 5*time.Second)
	for _, f := range r.Findings {
		if strings.Contains(f.Title, "concentrated") {
			t.Errorf("concentration reported while the other CPU is busy: %q", f.Title)
		}
	}
	// A mask that could not be read may be on already: no RPS fix then.
	a, b := mk(0, 0, 0, 0, 0), mk(190000, 100, 400, 500, 450)
	b.NICs[0].RPSCPUs = []string{""}
	for _, f := range Analyze(a, b, 5*time.Second).Findings {
		for _, x := range f.Fix {
			if x.Change != nil && x.Change.Kind == ChangeRPSCPUs {
				t.Errorf("RPS proposed for a queue whose mask is unknown: %q", fixLines(f.Fix))
			}
		}
	}
}

func TestIncludedCountersNotCountedTwice(t *testing.T) {
	const snmp, netstat = counters.ProcNetSNMP, counters.ProcNetNetstat
	a := snap(sys, ctr(snmp, "", "Ip:InHdrErrors", 0, stage.IP), ctr(netstat, "", "IpExt:InCsumErrors", 0, stage.IP))
	b := snap(sys, ctr(snmp, "", "Ip:InHdrErrors", 50, stage.IP), ctr(netstat, "", "IpExt:InCsumErrors", 30, stage.IP))
	r := Analyze(a, b, time.Second)
	if len(r.Findings) != 1 || r.Findings[0].Drops != 50 {
		t.Fatalf("findings = %+v, want one ip finding with 50 drops", r.Findings)
	}
}

func TestRxRingFixFromLayout(t *testing.T) {
	mk := func(missed, drv uint64) *counters.Snapshot {
		s := snap(sys,
			ctr(counters.NetlinkLinkStats, "eth0", "rx_missed_errors", missed, stage.RxRing),
			ctr(counters.EthtoolStats, "eth0", "rx_no_buffer_count", drv, stage.RxRing),
		)
		s.CPUs = 8
		s.NICs = []counters.NIC{{Name: "eth0", RxRing: 256, RxRingMax: 4096, CombinedChannels: 2, MaxCombinedChannels: 16, AdaptiveRx: true}}
		return s
	}
	r := Analyze(mk(0, 0), mk(900, 900), 5*time.Second)
	if len(r.Findings) != 1 {
		t.Fatalf("findings = %+v", r.Findings)
	}
	f := r.Findings[0]
	if f.Stage != stage.RxRing || f.Drops != 900 || len(f.Evidence) != 2 {
		t.Errorf("finding = %+v (driver counters repeat stats64 and must not add)", f)
	}
	want := []string{
		"ethtool -G eth0 rx 4096  # now 256; the driver's maximum",
		"ethtool -L eth0 combined 8  # now 2; spread the load over more queues and CPUs",
	}
	if diff := cmp.Diff(want, fixLines(f.Fix)); diff != "" {
		t.Errorf("fix (-want +got):\n%s", diff)
	}
}

func TestOutDiscardsRepeatQdiscDrops(t *testing.T) {
	a := snap(sys, ctr(counters.NetlinkQdisc, "a0 tbf 1:", "drops", 0, stage.Qdisc), ctr(counters.ProcNetSNMP, "", "Udp:SndbufErrors", 0, stage.TxSocket), ctr(counters.ProcNetSNMP, "", "Ip:OutDiscards", 0, stage.IP))
	b := snap(sys, ctr(counters.NetlinkQdisc, "a0 tbf 1:", "drops", 2946, stage.Qdisc), ctr(counters.ProcNetSNMP, "", "Udp:SndbufErrors", 2946, stage.TxSocket), ctr(counters.ProcNetSNMP, "", "Ip:OutDiscards", 2946, stage.IP))
	r := Analyze(a, b, time.Second)
	if len(r.Findings) != 1 || r.Findings[0].Stage != stage.Qdisc {
		t.Fatalf("findings = %+v, want the qdisc alone", r.Findings)
	}
}

// TestTbfLimitFixComputed: a root tbf's fix is a runnable tc change that
// restates its rate and burst as read and raises the limit to twice the
// current one, or to 100 ms at the rate when that is larger; a tbf whose
// settings were not read keeps the advice.
func TestTbfLimitFixComputed(t *testing.T) {
	const q = counters.NetlinkQdisc
	tests := []struct {
		name     string
		settings []counters.Counter
		want     []string
	}{
		{"twice the limit", []counters.Counter{gauge(q, "a0 tbf 1:", "rate", 125000), gauge(q, "a0 tbf 1:", "burst", 4096), gauge(q, "a0 tbf 1:", "limit", 8192)}, []string{
			"tc -s qdisc show dev a0  # the configured rate and limit",
			"tc qdisc change dev a0 root tbf rate 125000bps burst 4096 limit 16384  # now limit 8192; a larger queue absorbs bursts; raise the rate if it is too low",
		}},
		{"100 ms at the rate", []counters.Counter{gauge(q, "a0 tbf 1:", "rate", 125e6), gauge(q, "a0 tbf 1:", "burst", 1<<20), gauge(q, "a0 tbf 1:", "limit", 3000)}, []string{
			"tc -s qdisc show dev a0  # the configured rate and limit",
			"tc qdisc change dev a0 root tbf rate 125000000bps burst 1048576 limit 12500000  # now limit 3000; a larger queue absorbs bursts; raise the rate if it is too low",
		}},
		{"settings unread", nil, []string{
			"tc -s qdisc show dev a0  # the configured rate and limit",
			"a larger queue absorbs bursts: raise the limit (tc qdisc change dev a0 root tbf … limit BYTES), or the rate if it is too low",
		}},
	}
	for _, tt := range tests {
		a := snap(sys, append([]counters.Counter{ctr(q, "a0 tbf 1:", "drops", 0, stage.Qdisc)}, tt.settings...)...)
		b := snap(sys, append([]counters.Counter{ctr(q, "a0 tbf 1:", "drops", 900, stage.Qdisc)}, tt.settings...)...)
		r := Analyze(a, b, time.Second)
		if len(r.Findings) != 1 {
			t.Fatalf("%s: findings = %+v", tt.name, r.Findings)
		}
		if diff := cmp.Diff(tt.want, fixLines(r.Findings[0].Fix)); diff != "" {
			t.Errorf("%s: fix (-want +got):\n%s", tt.name, diff)
		}
	}
}

// TestNeighborCheckNamesFamily: the check line lists the failed entries of
// the table that moved: ip -6 for NDP, ip -4 for ARP, both when both moved.
func TestNeighborCheckNamesFamily(t *testing.T) {
	arp, nd := counters.ProcNetStatARPCache, counters.ProcNetStatNDiscCache
	tests := []struct {
		name   string
		tables []counters.SourceID
		want   string
	}{
		{"ndisc", []counters.SourceID{nd}, "ip -6 neigh show nud failed  # which neighbours do not answer"},
		{"arp", []counters.SourceID{arp}, "ip -4 neigh show nud failed  # which neighbours do not answer"},
		{"both", []counters.SourceID{arp, nd}, "ip neigh show nud failed  # which neighbours do not answer"},
	}
	for _, tt := range tests {
		var a, b []counters.Counter
		for _, src := range tt.tables {
			a = append(a, ctr(src, "", "unresolved_discards", 0, stage.Neighbor))
			b = append(b, ctr(src, "", "unresolved_discards", 300, stage.Neighbor))
		}
		r := Analyze(snap(sys, a...), snap(sys, b...), time.Second)
		if len(r.Findings) != 1 || len(r.Findings[0].Fix) == 0 {
			t.Fatalf("%s: findings = %+v", tt.name, r.Findings)
		}
		if got := fixLine(r.Findings[0].Fix[0]); got != tt.want {
			t.Errorf("%s: check line %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestVxlanFrameErrorsAreTunnel: rx_frame_errors of a vxlan device (the
// counters source marks them stage tunnel) make a tunnel finding on that
// device, never "corrupt frames" with an ethtool fix.
func TestVxlanFrameErrorsAreTunnel(t *testing.T) {
	const link = counters.NetlinkLinkStats
	a := snap(sys, ctr(link, "vx0", "rx_frame_errors", 0, stage.Tunnel), ctr(link, "eth0", "rx_frame_errors", 0, stage.NIC))
	b := snap(sys, ctr(link, "vx0", "rx_frame_errors", 120, stage.Tunnel), ctr(link, "eth0", "rx_frame_errors", 0, stage.NIC))
	r := Analyze(a, b, time.Second)
	if len(r.Findings) != 1 {
		t.Fatalf("findings = %+v, want one tunnel finding", r.Findings)
	}
	f := r.Findings[0]
	if f.Stage != stage.Tunnel || f.Drops != 120 || !strings.Contains(f.Title, "vx0") || !strings.Contains(f.Cause, "rx_frame_errors") {
		t.Errorf("finding = %+v", f)
	}
	for _, x := range f.Fix {
		if strings.HasPrefix(x.Command, "ethtool") {
			t.Errorf("a tunnel finding proposes %q", x.Command)
		}
	}
}

// TestQdiscExplainedByClassAndFqCodel: an htb root's drops are explained by
// the class that dropped (with its rate and ceil) and by its fq_codel
// leaf's statistics: a full queue gets a runnable limit change of that
// leaf; CoDel's own drops get no larger queue.
func TestQdiscExplainedByClassAndFqCodel(t *testing.T) {
	const q = counters.NetlinkQdisc
	mk := func(drops, overlimit uint64) *counters.Snapshot {
		return snap(sys,
			ctr(q, "a0 htb 1:", "drops", drops, stage.Qdisc),
			ctr(q, "a0 htb class 1:10", "drops", drops, ""),
			ctr(q, "a0 fq_codel 10:", "drops", drops, ""),
			ctr(q, "a0 fq_codel 10:", "drop_overlimit", overlimit, ""),
			ctr(q, "a0 fq_codel 10:", "drop_overmemory", 0, ""),
			gauge(q, "a0 htb class 1:10", "rate", 125000), gauge(q, "a0 htb class 1:10", "ceil", 250000),
			gauge(q, "a0 fq_codel 10:", "packet_limit", 20),
		)
	}
	r := Analyze(mk(0, 0), mk(180, 180), time.Second)
	if len(r.Findings) != 1 {
		t.Fatalf("findings = %+v", r.Findings)
	}
	f := r.Findings[0]
	wantCause := "fq_codel (fq_codel 10:) on a0 reached its limit of 20 packets and dropped 180 packets (drop_overlimit): a burst larger than its queue; " +
		"htb class 1:10 (rate 125000 bytes/s, ceil 250000 bytes/s) dropped 180 of them"
	if f.Cause != wantCause || f.Drops != 180 || f.Title != "qdisc htb on a0 dropped 180 packets" {
		t.Errorf("finding: title %q drops %d cause\n%q, want\n%q", f.Title, f.Drops, f.Cause, wantCause)
	}
	want := []string{
		"tc -s qdisc show dev a0  # the configured rate and limit",
		"raise the rate or ceil of class 1:10 (tc class change dev a0 classid 1:10 htb rate … ceil …), or the limit of its leaf qdisc",
		"tc qdisc change dev a0 handle 10: fq_codel limit 40  # now limit 20; a longer queue absorbs the burst; CoDel still keeps the delay low",
		"tc -s class show dev a0  # each class's rate, ceil, drops and overlimits",
	}
	if diff := cmp.Diff(want, fixLines(f.Fix)); diff != "" {
		t.Errorf("fix (-want +got):\n%s", diff)
	}

	// CoDel dropped, the queue was never full: no larger queue proposed.
	r = Analyze(mk(0, 0), mk(180, 0), time.Second)
	f = r.Findings[0]
	if !strings.HasPrefix(f.Cause, "CoDel in fq_codel on a0 dropped packets that waited") {
		t.Errorf("cause %q", f.Cause)
	}
	for _, l := range fixLines(f.Fix) {
		if strings.Contains(l, "fq_codel limit") {
			t.Errorf("CoDel's drops get a larger queue: %q", l)
		}
	}
}
