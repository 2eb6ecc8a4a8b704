package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// hasFix reports whether any fix line of f starts with prefix.
func hasFix(f Finding, prefix string) bool {
	for _, x := range f.Fix {
		if strings.HasPrefix(x.Command, prefix) {
			return true
		}
	}
	return false
}

// transmitFix reports a fix that changes the transmit path: the harmful
// answer to a receive-side drop.
func transmitFix(f Finding) bool {
	for _, x := range f.Fix {
		if x.Kind == FixSetting || strings.Contains(x.Command, " root ") || strings.Contains(x.Command, "txqueuelen") || strings.Contains(x.Command, "wmem") {
			return true
		}
	}
	return false
}

// TestTCIngressIsNotTheTransmitQueue: a clsact qdisc whose ingress bpf
// filter dropped 2000 packets is a tc-ingress finding that names the
// program, never a qdisc finding with a transmit-path fix.
func TestTCIngressIsNotTheTransmitQueue(t *testing.T) {
	const src = counters.NetlinkQdisc
	q := func(v uint64) counters.Counter { return ctr(src, "veth1 clsact ffff:", "drops", v, stage.TCIngress) }
	a, b := snap(sys, q(10)), snap(sys, q(2010))
	b.Hooks = []counters.Hook{{Ifname: "veth1", Point: counters.HookTCIngress, Kind: "bpf", Pref: 1, ProgID: 42, ProgName: "tc_drop", Mode: "direct-action"}}
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{{Count: 2000, Reason: "TC_INGRESS", Function: "__netif_receive_skb_core", Location: "__netif_receive_skb_core+0x56b", Stage: stage.TCIngress, Ifname: "veth1"}}}
	r := AnalyzeWith(a, b, 2*time.Second, Extra{Trace: tr})
	if len(r.Findings) != 1 {
		t.Fatalf("want one finding, got %+v", r.Findings)
	}
	f := r.Findings[0]
	if f.Stage != stage.TCIngress || f.Drops != 2000 || f.Severity != Critical {
		t.Errorf("finding = %+v", f)
	}
	if !strings.Contains(f.Cause, "prog 42 tc_drop") || !hasFix(f, "tc -s filter show dev veth1 ingress") || !hasFix(f, "bpftool prog show id 42") {
		t.Errorf("the finding does not name the filter and program: cause %q fix %+v", f.Cause, f.Fix)
	}
	if transmitFix(f) {
		t.Errorf("a receive-side drop got a transmit-path fix: %+v", f.Fix)
	}
	// Without the tracer the counter alone still says tc-ingress.
	r = AnalyzeWith(a, b, 2*time.Second, Extra{})
	if len(r.Findings) != 1 || r.Findings[0].Stage != stage.TCIngress || r.Findings[0].Drops != 2000 {
		t.Errorf("counter only: %+v", r.Findings)
	}
}

// TestClsactEgressOnly: a clsact qdisc with only egress filters drops on
// the transmit side: a qdisc finding pointing at the egress filters.
func TestClsactEgressOnly(t *testing.T) {
	const src = counters.NetlinkQdisc
	q := func(v uint64) counters.Counter { return ctr(src, "veth1 clsact ffff:", "drops", v, stage.TCIngress) }
	a, b := snap(sys, q(0)), snap(sys, q(50))
	b.Hooks = []counters.Hook{{Ifname: "veth1", Point: counters.HookTCEgress, Kind: "bpf", Pref: 1, ProgID: 7}}
	r := AnalyzeWith(a, b, 2*time.Second, Extra{})
	if len(r.Findings) != 1 || r.Findings[0].Stage != stage.Qdisc || !hasFix(r.Findings[0], "tc -s filter show dev veth1 egress") {
		t.Fatalf("egress-only clsact: %+v", r.Findings)
	}
	// The tracer says TC_EGRESS: the same.
	b.Hooks = nil
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{{Count: 50, Reason: "TC_EGRESS", Function: "sch_handle_egress", Stage: stage.Qdisc, Ifname: "veth1"}}}
	r = AnalyzeWith(a, b, 2*time.Second, Extra{Trace: tr})
	if len(r.Findings) != 1 || r.Findings[0].Stage != stage.Qdisc || !strings.Contains(r.Findings[0].Title, "egress") {
		t.Fatalf("TC_EGRESS traced: %+v", r.Findings)
	}
}

// TestXDPNative: native XDP drops counted only by the driver (ethtool -S)
// are an xdp finding that names the program, with the run count as
// context, not as drops.
func TestXDPNative(t *testing.T) {
	drv := func(v uint64) counters.Counter {
		return ctr(counters.EthtoolStats, "eth0", "rx_queue_0_xdp_drops", v, stage.XDP)
	}
	runs := func(v uint64) counters.Counter {
		return ctr(counters.BPFProgStats, "eth0 xdp prog 9", "run_cnt", v, "")
	}
	a, b := snap(sys, drv(0), runs(0)), snap(sys, drv(500), runs(800))
	b.Hooks = []counters.Hook{{Ifname: "eth0", Point: counters.HookXDP, Mode: "native", ProgID: 9, ProgName: "fw", RunStats: true, RunCount: 800}}
	r := AnalyzeWith(a, b, 2*time.Second, Extra{})
	if len(r.Findings) != 1 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	f := r.Findings[0]
	if f.Stage != stage.XDP || f.Drops != 500 || !strings.Contains(f.Cause, "prog 9 fw (native)") || !strings.Contains(f.Cause, "native XDP frees no socket buffer") {
		t.Errorf("finding = %+v", f)
	}
	if !hasFix(f, "ethtool -S eth0") || !hasFix(f, "bpftool prog show id 9") || transmitFix(f) {
		t.Errorf("fixes = %+v", f.Fix)
	}
	var sawRuns bool
	for _, e := range f.Evidence {
		sawRuns = sawRuns || e.Source == counters.BPFProgStats && e.Delta == 800
	}
	if !sawRuns {
		t.Errorf("run count not shown as context: %+v", f.Evidence)
	}
}

// TestBridgeAndTunnelFromTrace: drops only the tracer sees inside a bridge
// or a vxlan device are findings of their own stages with their causes.
func TestBridgeAndTunnelFromTrace(t *testing.T) {
	a, b := snap(sys), snap(sys)
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 300, Reason: "VXLAN_VNI_NOT_FOUND", Function: "vxlan_rcv", Location: "vxlan_rcv+0x1", Stage: stage.Tunnel, Ifname: "eth0"},
		{Count: 40, Reason: "BRIDGE_INGRESS_STP_STATE", Function: "br_handle_frame_finish", Location: "br_handle_frame_finish+0x2", Stage: stage.Bridge, Ifname: "veth3"},
	}}
	r := AnalyzeWith(a, b, 2*time.Second, Extra{Trace: tr})
	if len(r.Findings) != 2 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	got := map[stage.ID]Finding{}
	for _, f := range r.Findings {
		got[f.Stage] = f
	}
	if f := got[stage.Tunnel]; f.Drops != 300 || !strings.Contains(f.Cause, "VNI") || !hasFix(f, "ip -d link show type vxlan") || len(f.Evidence) == 0 {
		t.Errorf("tunnel finding = %+v", f)
	}
	if f := got[stage.Bridge]; f.Drops != 40 || !strings.Contains(f.Cause, "STP") || !hasFix(f, "bridge -d link show dev veth3") {
		t.Errorf("bridge finding = %+v", f)
	}
	if len(r.Unexplained) != 0 {
		t.Errorf("unexplained: %+v", r.Unexplained)
	}
}

// TestBridgeSTPStateFix: BRIDGE_INGRESS_STP_STATE drops get the cause and
// the fix the port's STP state calls for. Before, every state got the same
// "set the port forwarding (bridge link set dev PORT state 3)", which the
// kernel refuses while its STP runs and which says nothing of STP's wait.
func TestBridgeSTPStateFix(t *testing.T) {
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 2000, Reason: "BRIDGE_INGRESS_STP_STATE", Function: "br_handle_frame", Location: "br_handle_frame+0xff", Stage: stage.Bridge, Ifname: "veth3"},
	}}
	port := func(st counters.PortState, stp int) counters.BridgePort {
		return counters.BridgePort{Port: "veth3", Bridge: "br0", State: st, STP: stp, ForwardDelay: 30 * time.Second}
	}
	tests := []struct {
		name      string
		port      counters.BridgePort
		cause     string   // part of the cause
		commands  []string // printed commands, in full
		forbidden string   // a command prefix that must not be offered
	}{
		{"listening under the kernel's STP", port(counters.PortListening, 1), "listening and then in learning for forward_delay (30s)",
			[]string{"ip link set dev br0 type bridge stp_state 0", "ip link set dev br0 type bridge forward_delay 200", "ip -d link show dev br0"}, "bridge link set"},
		{"learning under the kernel's STP", port(counters.PortLearning, 1), "STP state learning",
			[]string{"ip link set dev br0 type bridge stp_state 0"}, "bridge link set"},
		{"blocking: STP breaks a loop", port(counters.PortBlocking, 1), "a loop",
			[]string{"bridge -d link show dev veth3"}, "ip link set dev br0 type bridge stp_state"},
		{"blocking set by hand without STP", port(counters.PortBlocking, 0), "set by hand",
			[]string{"bridge link set dev veth3 state 3"}, "ip link set dev br0 type bridge stp_state"},
		{"disabled under STP: the link is down", port(counters.PortDisabled, 1), "link is down",
			[]string{"ip link show dev veth3"}, "bridge link set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := snap(sys)
			b.BridgePorts = []counters.BridgePort{tt.port}
			r := AnalyzeWith(snap(sys), b, 2*time.Second, Extra{Trace: tr})
			if len(r.Findings) != 1 || r.Findings[0].Stage != stage.Bridge {
				t.Fatalf("findings: %+v", r.Findings)
			}
			f := r.Findings[0]
			if !strings.Contains(f.Cause, tt.cause) || !strings.Contains(f.Cause, "br0") {
				t.Errorf("cause %q lacks %q", f.Cause, tt.cause)
			}
			cmds := map[string]bool{}
			for _, x := range f.Fix {
				cmds[x.Command] = true
				if x.Command != "" && strings.HasPrefix(x.Command, tt.forbidden) {
					t.Errorf("offers %q", x.Command)
				}
				if x.Kind == FixManual && x.NotAutomatic == "" {
					t.Errorf("manual fix %q without the reason it is manual", x.Command)
				}
			}
			for _, c := range tt.commands {
				if !cmds[c] {
					t.Errorf("no fix %q in %q", c, fixLines(f.Fix))
				}
			}
		})
	}
}

// TestTCXIsNotATCFilter: a tcx program is a BPF link, not a tc filter. Its
// drops are never answered with `tc filter del` (which finds nothing to
// delete) or `tc filter show`; the fixes name the link that holds the
// program and how it is detached. With a clsact filter beside it, the tc
// commands stay for the filter.
func TestTCXIsNotATCFilter(t *testing.T) {
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 2000, Reason: "TC_INGRESS", Function: "__netif_receive_skb_core", Location: "__netif_receive_skb_core+0x56b", Stage: stage.TCIngress, Ifname: "veth1"},
	}}
	tcx := counters.Hook{Ifname: "veth1", Point: counters.HookTCIngress, Kind: "tcx", ProgID: 42, ProgName: "tc_drop_udp", LinkID: 12}
	filter := counters.Hook{Ifname: "veth1", Point: counters.HookTCIngress, Kind: "bpf", Pref: 1, ProgID: 43, ProgName: "tc_drop", Mode: "direct-action"}
	tests := []struct {
		name        string
		hooks       []counters.Hook
		want, never []string // command or text prefixes
	}{
		{"tcx alone", []counters.Hook{tcx},
			[]string{"bpftool net show dev veth1", "bpftool prog show id 42", "bpftool link show id 12", "bpftool link detach id 12", "a tcx program is a BPF link"},
			[]string{"tc ", "a tc filter that should not be there"}},
		{"tcx beside a clsact filter", []counters.Hook{filter, tcx},
			[]string{"tc -s filter show dev veth1 ingress", "bpftool link show id 12", "a tc filter that should not be there is removed with tc filter del dev veth1 ingress pref N"},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := snap(sys)
			b.Hooks = tt.hooks
			r := AnalyzeWith(snap(sys), b, 2*time.Second, Extra{Trace: tr})
			if len(r.Findings) != 1 || r.Findings[0].Stage != stage.TCIngress || r.Findings[0].Drops != 2000 {
				t.Fatalf("findings: %+v", r.Findings)
			}
			f := r.Findings[0]
			has := func(prefix string) bool {
				for _, x := range f.Fix {
					if x.Command != "" && strings.HasPrefix(x.Command, prefix) || x.Text != "" && strings.HasPrefix(x.Text, prefix) {
						return true
					}
				}
				return false
			}
			for _, w := range tt.want {
				if !has(w) {
					t.Errorf("no fix %q in %q", w, fixLines(f.Fix))
				}
			}
			for _, w := range tt.never {
				if has(w) {
					t.Errorf("fix %q offered: %q", w, fixLines(f.Fix))
				}
			}
			for _, x := range f.Fix {
				if x.Kind == FixManual && x.NotAutomatic == "" {
					t.Errorf("manual fix %q without the reason it is manual", x.Command)
				}
			}
			if transmitFix(f) {
				t.Errorf("transmit-path fix for a receive-side drop: %q", fixLines(f.Fix))
			}
		})
	}
}
