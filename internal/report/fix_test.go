package report

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// fixtureSysctls are the settings of a real 6.18 kernel (copied from its
// /proc/sys), from which the rules compute their proposals.
func fixtureSysctls(t *testing.T) map[string]string {
	t.Helper()
	s := &counters.Snapshot{}
	fs := counters.FS{Proc: "../../counters/testdata/linux-6.18/proc", ProcNet: "../../counters/testdata/linux-6.18/proc/net", Sys: "../../counters/testdata/nic/sys"}
	if err := (counters.SysctlSource{}).Collect(context.Background(), counters.NewReading(fs), s); err != nil && len(s.Sysctls) == 0 {
		t.Fatalf("fixture sysctls: %v", err)
	}
	if s.Sysctls["net.core.rmem_max"] == "" || s.Sysctls["net.ipv4.tcp_rmem"] == "" {
		t.Fatalf("fixture sysctls lack the buffer limits: %v", s.Sysctls)
	}
	return s.Sysctls
}

// fixtureNIC is an interface whose ring, channels, RPS and IRQ layout all
// leave room for a fix.
var fixtureNIC = counters.NIC{
	Name: "eth0", RxRing: 256, RxRingMax: 4096, TxRing: 256, TxRingMax: 4096, CombinedChannels: 1, MaxCombinedChannels: 4,
	RxQueues: 1, RPSCPUs: []string{"0"}, TxQueueLen: 1000, RxUsecs: 50,
	IRQs: []counters.IRQ{{Number: 25, Name: "virtio0-input.0", Affinity: "0"}},
}

// ruleCases move the counters each rule reads, one case per rule (rules
// interact: qdisc drops are subtracted from the send-buffer finding), so
// that every rule computes its fixes at least once.
var ruleCases = []struct {
	name    string
	moved   []counters.Counter // deltas over the interval
	gauges  []counters.Counter // levels at the second snapshot
	sockets *sockets.Summary
	trace   *droptrace.Snapshot // the tracer's rows of the interval (bridge, tunnel: only it sees them)
}{
	{name: "nic", moved: []counters.Counter{{Source: counters.NetlinkLinkStats, Object: "eth0", Field: "rx_crc_errors", Value: 50, Stage: stage.NIC}}},
	{name: "rx-ring", moved: []counters.Counter{{Source: counters.NetlinkLinkStats, Object: "eth0", Field: "rx_missed_errors", Value: 900, Stage: stage.RxRing}}},
	{name: "rx-ring at max", moved: []counters.Counter{{Source: counters.NetlinkLinkStats, Object: "lo", Field: "rx_missed_errors", Value: 900, Stage: stage.RxRing}}},
	{name: "softirq backlog", moved: []counters.Counter{
		{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Value: 500, Stage: stage.Softirq, HostWide: true},
		{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "flow_limit_count", Value: 20, Stage: stage.Softirq, HostWide: true},
		{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "time_squeeze", Value: 30, Stage: stage.Softirq, HostWide: true},
	}},
	{name: "rx_dropped", moved: []counters.Counter{{Source: counters.NetlinkLinkStats, Object: "eth0", Field: "rx_dropped", Value: 40, Stage: stage.Softirq}}},
	{name: "softirq concentrated", moved: []counters.Counter{
		{Source: counters.ProcSoftirqs, Object: "cpu0", Field: "NET_RX", Value: 190000, HostWide: true},
		{Source: counters.ProcSoftirqs, Object: "cpu1", Field: "NET_RX", Value: 100, HostWide: true},
		// cpu1 idles: concentration is reported only then.
		{Source: counters.ProcStat, Object: "cpu1", Field: "idle", Value: 450, HostWide: true},
		{Source: counters.ProcStat, Object: "cpu1", Field: "total", Value: 500, HostWide: true},
	}},
	{name: "ip", moved: []counters.Counter{
		{Source: counters.ProcNetNetstat, Field: "TcpExt:IPReversePathFilter", Value: 200, Stage: stage.IP},
		{Source: counters.ProcNetNetstat, Field: "IpExt:InNoRoutes", Value: 20, Stage: stage.IP},
		{Source: counters.ProcNetSNMP, Field: "Ip:InHdrErrors", Value: 10, Stage: stage.IP},
	}},
	{name: "netfilter", moved: []counters.Counter{{Source: counters.NetlinkNftables, Object: "inet filter input handle 4", Field: "packets", Value: 100, Stage: stage.Netfilter}}},
	{name: "conntrack full", moved: []counters.Counter{{Source: counters.ProcNetStatConntrack, Field: "drop", Value: 5000, Stage: stage.Conntrack}}},
	{name: "conntrack insert", moved: []counters.Counter{{Source: counters.ProcNetStatConntrack, Field: "insert_failed", Value: 50, Stage: stage.Conntrack}}},
	{name: "no-socket", moved: []counters.Counter{{Source: counters.ProcNetSNMP, Field: "Udp:NoPorts", Value: 30, Stage: stage.NoSocket}}},
	{name: "udp rcvbuf", moved: []counters.Counter{
		{Source: counters.ProcNetSNMP, Field: "Udp:RcvbufErrors", Value: 3000, Stage: stage.SocketRcvbuf},
		{Source: counters.ProcNetSNMP, Field: "Udp:MemErrors", Value: 30, Stage: stage.SocketRcvbuf},
	}, sockets: &sockets.Summary{Pressure: []sockets.PressuredSocket{{
		Protocol: "udp", Local: netip.MustParseAddrPort("10.0.0.2:5000"), Rcvbuf: 8192, RmemAlloc: 8192, Fill: 1, Drops: 3000,
		Processes: []sockets.Process{{PID: 7, Comm: "reader"}},
	}}}},
	{name: "tcp rcvbuf and memory", moved: []counters.Counter{
		{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPRcvQDrop", Value: 300, Stage: stage.SocketRcvbuf},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:PruneCalled", Value: 30},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPMemoryPressures", Value: 3},
	}},
	{name: "accept queue", moved: []counters.Counter{
		{Source: counters.ProcNetNetstat, Field: "TcpExt:ListenOverflows", Value: 12, Stage: stage.TCPListen},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:ListenDrops", Value: 12, Stage: stage.TCPListen},
	}, sockets: &sockets.Summary{Listeners: []sockets.Listener{{
		Local: netip.MustParseAddrPort("0.0.0.0:8080"), Queued: 2, Backlog: 1, Full: true, Drops: 12,
		Processes: []sockets.Process{{PID: 42, Comm: "server"}},
	}}}},
	{name: "syn queue", moved: []counters.Counter{{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPReqQFullDrop", Value: 12, Stage: stage.TCPListen}}},
	{name: "tcp", moved: []counters.Counter{
		{Source: counters.ProcNetSNMP, Field: "Tcp:InCsumErrors", Value: 100, Stage: stage.TCP},
		{Source: counters.ProcNetSNMP, Field: "Tcp:RetransSegs", Value: 10},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPSynRetrans", Value: 5},
	}},
	{name: "ports", moved: []counters.Counter{{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPTimeWaitOverflow", Value: 20, Stage: stage.Ports}},
		gauges: []counters.Counter{{Source: counters.ProcNetSockstat, Field: "TCP:tw", Value: 28000, Gauge: true}}},
	{name: "ports per destination", sockets: &sockets.Summary{
		Settings: sockets.Settings{PortLow: 40000, PortHigh: 40099, TwReuse: 2, Timestamps: 1},
		Destinations: []sockets.Destination{{
			Remote: netip.MustParseAddrPort("10.9.0.2:80"), Sockets: 97, TimeWait: 95, EphemeralInUse: 97,
			Share: 0.97, Severity: "critical", TwReuse: sockets.TwReuseWouldHelp,
		}},
	}},
	{name: "tx-socket", moved: []counters.Counter{{Source: counters.ProcNetSNMP, Field: "Udp:SndbufErrors", Value: 300, Stage: stage.TxSocket}}},
	{name: "qdisc shaper", moved: []counters.Counter{{Source: counters.NetlinkQdisc, Object: "eth0 tbf 1:", Field: "drops", Value: 900, Stage: stage.Qdisc}},
		gauges: []counters.Counter{
			{Source: counters.NetlinkQdisc, Object: "eth0 tbf 1:", Field: "rate", Value: 125000, Gauge: true},
			{Source: counters.NetlinkQdisc, Object: "eth0 tbf 1:", Field: "burst", Value: 4096, Gauge: true},
			{Source: counters.NetlinkQdisc, Object: "eth0 tbf 1:", Field: "limit", Value: 4000, Gauge: true},
		}},
	{name: "qdisc fifo", moved: []counters.Counter{{Source: counters.NetlinkQdisc, Object: "eth0 pfifo_fast 0:", Field: "drops", Value: 900, Stage: stage.Qdisc}}},
	{name: "qdisc other", moved: []counters.Counter{{Source: counters.NetlinkQdisc, Object: "eth0 fq_codel 0:", Field: "drops", Value: 900, Stage: stage.Qdisc}}},
	{name: "neighbor unresolved", moved: []counters.Counter{{Source: counters.ProcNetStatARPCache, Field: "unresolved_discards", Value: 256, Stage: stage.Neighbor}}},
	{name: "neighbor overflow", moved: []counters.Counter{{Source: counters.ProcNetStatARPCache, Field: "table_fulls", Value: 3, Stage: stage.Neighbor}}},
	{name: "tx-ring", moved: []counters.Counter{{Source: counters.NetlinkLinkStats, Object: "eth0", Field: "tx_dropped", Value: 30, Stage: stage.TxRing}}},
	{name: "xdp", moved: []counters.Counter{{Source: counters.EthtoolStats, Object: "eth0", Field: "rx_queue_0_xdp_drops", Value: 500, Stage: stage.XDP}}},
	{name: "tc-ingress", moved: []counters.Counter{{Source: counters.NetlinkQdisc, Object: "eth0 clsact ffff:", Field: "drops", Value: 500, Stage: stage.TCIngress}}},
	{name: "bridge and tunnel", trace: &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 40, Reason: "BRIDGE_INGRESS_STP_STATE", Function: "br_handle_frame_finish", Location: "br_handle_frame_finish+0x2", Stage: stage.Bridge, Ifname: "eth0"},
		{Count: 300, Reason: "VXLAN_VNI_NOT_FOUND", Function: "vxlan_rcv", Location: "vxlan_rcv+0x1", Stage: stage.Tunnel, Ifname: "eth0"},
	}}},
	{name: "generic", moved: []counters.Counter{{Source: counters.ProcNetSNMP, Field: "Ip6:InUnknownProtos", Value: 40, Stage: stage.IP}}},
}

// ruleReports diagnoses every rule case over the fixture settings.
func ruleReports(t *testing.T) map[string]*diagnose.Report {
	t.Helper()
	sysctls := fixtureSysctls(t)
	out := map[string]*diagnose.Report{}
	for _, c := range ruleCases {
		mk := func(after bool) *counters.Snapshot {
			s := &counters.Snapshot{Sysctls: sysctls, CPUs: 2, Netns: "web", NICs: []counters.NIC{fixtureNIC, {Name: "lo", RxRing: 4096, RxRingMax: 4096, AdaptiveRx: true}}}
			for _, m := range c.moved {
				if after {
					s.Counters = append(s.Counters, m)
				} else {
					m.Value = 0
					s.Counters = append(s.Counters, m)
				}
			}
			s.Counters = append(s.Counters, c.gauges...)
			return s
		}
		r := diagnose.AnalyzeWith(mk(false), mk(true), 5*time.Second, diagnose.Extra{Sockets: c.sockets, Trace: c.trace})
		if len(r.Findings) == 0 {
			t.Errorf("%s: no finding", c.name)
		}
		out[c.name] = r
	}
	return out
}

// TestEveryPrintedCommandParses renders the diagnosis of every rule and
// passes each printed command line through bash -n: what the report shows
// as a command must run when pasted. It also checks each command is
// printed as a line of its own, and that every kind of fix occurs.
func TestEveryPrintedCommandParses(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	kinds := map[diagnose.FixKind]int{}
	stages := map[stage.ID]bool{}
	var lines []string
	for name, r := range ruleReports(t) {
		var b strings.Builder
		if err := Diagnosis(&b, r); err != nil {
			t.Fatal(err)
		}
		printed := map[string]bool{}
		for _, l := range strings.Split(b.String(), "\n") {
			printed[strings.TrimSpace(l)] = true
		}
		for _, f := range r.Findings {
			stages[f.Stage] = true
			for _, x := range f.Fix {
				kinds[x.Kind]++
				switch x.Kind {
				case diagnose.FixSetting:
					if x.Change == nil || x.Command != x.Change.Command() {
						t.Errorf("%s: setting fix %+v does not carry its change, or its command is not the change's", name, x)
					}
				case diagnose.FixManual:
					if x.NotAutomatic == "" {
						t.Errorf("%s: manual fix %q says not why netdrop leaves it to a person", name, x.Command)
					}
				case diagnose.FixApp:
					if x.App == nil || x.App.Value == 0 {
						t.Errorf("%s: application fix %+v has no change or no value", name, x)
					}
				}
				if (x.Kind == diagnose.FixAdvice || x.Kind == diagnose.FixApp) && x.Command != "" {
					t.Errorf("%s: %s fix carries a command %q", name, x.Kind, x.Command)
				}
			}
		}
		for _, c := range Commands(r) {
			if !printed[c] {
				t.Errorf("%s: command %q is not printed as a line of its own in\n%s", name, c, b.String())
			}
			lines = append(lines, c)
		}
	}
	for _, k := range []diagnose.FixKind{diagnose.FixSetting, diagnose.FixApp, diagnose.FixManual, diagnose.FixInspect, diagnose.FixAdvice} {
		if kinds[k] == 0 {
			t.Errorf("no rule case produced a %s fix", k)
		}
	}
	for _, s := range stage.All() {
		if !stages[s.ID] {
			t.Errorf("no rule case produced a finding at %s", s.ID)
		}
	}
	if len(lines) < 40 {
		t.Errorf("only %d command lines: the rule cases do not reach the rules", len(lines))
	}
	for _, l := range lines {
		if out, err := exec.Command(bash, "-n", "-c", l).CombinedOutput(); err != nil {
			t.Errorf("bash -n rejects %q: %v\n%s", l, err, out)
		}
	}
}

func TestCommandLine(t *testing.T) {
	c := diagnose.Change{Kind: diagnose.ChangeSysctl, Target: "net.ipv4.tcp_rmem", Current: "4096 131072 6291456", Proposed: "4096 131072 33554432"}
	tests := []struct {
		f    diagnose.Fix
		want string
	}{
		{diagnose.Fix{Kind: diagnose.FixSetting, Command: c.Command(), Change: &c, Now: c.Current, Note: "autotuning max"},
			`sysctl -w net.ipv4.tcp_rmem="4096 131072 33554432"  # now 4096 131072 6291456; autotuning max`},
		{diagnose.Fix{Kind: diagnose.FixInspect, Command: "nft -a list ruleset"}, "nft -a list ruleset"},
		{diagnose.Fix{Kind: diagnose.FixInspect, Command: "ip neigh show nud failed", Note: "which\nneighbours"}, "ip neigh show nud failed  # which neighbours"},
		{diagnose.Fix{Kind: diagnose.FixAdvice, Text: "read faster"}, ""},
	}
	for _, tt := range tests {
		if got := CommandLine(tt.f); got != tt.want {
			t.Errorf("CommandLine(%+v) = %q, want %q", tt.f, got, tt.want)
		}
	}
}
