package diagnose

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// The receive-side hooks (XDP, tc ingress) and the L2/L3 devices on the path
// (bridge, tunnel). Their drops are verdicts of a program, a filter or a
// device's configuration, never a queue that was too short: each finding
// names what refused the packets on which interface, and its fix is the
// command that shows that program or setting — never a transmit-path knob.

// hookGroup is what one interface lost at one hook stage: counter evidence,
// tracer rows, and the larger of the two counts. The tracer's rows become
// evidence through ruleTrace, which adds them to the stage's finding.
type hookGroup struct {
	ifname   string
	counters []counters.Counter
	rows     []droptrace.Row
	traced   uint64
}

// drops is the group's loss: the tracer's exact count where it ran, the
// counters' where it did not (native XDP frees no skb, so only the driver
// counts it), the larger when both saw part of it.
func (g hookGroup) drops() uint64 {
	return max(sum(g.counters), g.traced)
}

// hookGroups groups the counters cs (by their interface, the first word of
// Object) and the tracer's rows at st (by interface) per interface.
func (in *input) hookGroups(st stage.ID, cs []counters.Counter) []hookGroup {
	byIf := map[string]*hookGroup{}
	get := func(ifn string) *hookGroup {
		g, ok := byIf[ifn]
		if !ok {
			g = &hookGroup{ifname: ifn}
			byIf[ifn] = g
		}
		return g
	}
	for _, c := range cs {
		ifn, _, _ := strings.Cut(c.Object, " ")
		g := get(ifn)
		g.counters = append(g.counters, c)
	}
	for _, r := range in.traceRows(st) {
		ifn := r.Ifname
		if ifn == "" && r.Ifindex != 0 {
			ifn = "ifindex" + strconv.Itoa(int(r.Ifindex))
		}
		g := get(ifn)
		g.rows = append(g.rows, r)
		g.traced += r.Count
	}
	out := make([]hookGroup, 0, len(byIf))
	for _, g := range byIf {
		if g.drops() > 0 {
			out = append(out, *g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ifname < out[j].ifname })
	return out
}

// traceRows returns the tracer's rows of the interval at stage st.
func (in *input) traceRows(st stage.ID) []droptrace.Row {
	if in.trace == nil {
		return nil
	}
	var out []droptrace.Row
	for _, r := range in.trace.Rows {
		if r.Stage == st {
			out = append(out, r)
		}
	}
	return out
}

// tracedAt counts the tracer's drops at stage st on interface ifn with
// reason.
func (in *input) tracedAt(st stage.ID, ifn, reason string) uint64 {
	var n uint64
	for _, r := range in.traceRows(st) {
		if r.Ifname == ifn && r.Reason == reason {
			n += r.Count
		}
	}
	return n
}

// hooksAt returns the hooks attached at point p of interface ifn.
func (in *input) hooksAt(ifn string, p counters.HookPoint) []counters.Hook {
	var out []counters.Hook
	for _, h := range in.after.Hooks {
		if h.Ifname == ifn && h.Point == p {
			out = append(out, h)
		}
	}
	return out
}

// hookLabels lists hooks for a cause: "bpf pref 1 prog 42 tc_drop (direct-action)".
func hookLabels(hs []counters.Hook) string {
	var parts []string
	for _, h := range hs {
		l := strings.TrimPrefix(h.Label(), h.Ifname+" "+string(h.Point))
		parts = append(parts, strings.TrimSpace(l))
	}
	return strings.Join(parts, "; ")
}

// progFixes are the inspection commands for the BPF programs of hs.
func progFixes(hs []counters.Hook) []Fix {
	var out []Fix
	for _, h := range hs {
		if h.ProgID != 0 {
			out = append(out, inspect(shellJoin("bpftool", "prog", "show", "id", strconv.FormatUint(uint64(h.ProgID), 10)),
				fmt.Sprintf("the program %s: load time, and run_cnt with kernel.bpf_stats_enabled=1", h.ProgName)))
		}
	}
	return out
}

// ruleTCIngress: tc ingress / clsact filters and actions that returned
// TC_ACT_SHOT. The ingress or clsact qdisc counts them as its "dropped"
// (counters give those the tc-ingress stage); the tracer sees TC_INGRESS.
// A clsact qdisc counts its egress filters' drops in the same counter: when
// the tracer saw only TC_EGRESS there, or only egress filters exist, those
// drops are left to the transmit side.
func ruleTCIngress(in *input) []Finding {
	isIngress := func(c counters.Counter) bool {
		return c.Source == counters.NetlinkQdisc && c.Stage == stage.TCIngress
	}
	cs := in.moved(func(c counters.Counter) bool { return isIngress(c) && c.Field == "drops" })
	in.moved(isIngress) // overlimits, requeues: nothing queues here
	var out []Finding
	for _, g := range in.hookGroups(stage.TCIngress, cs) {
		ing := in.hooksAt(g.ifname, counters.HookTCIngress)
		egr := in.hooksAt(g.ifname, counters.HookTCEgress)
		d := g.drops()
		if g.traced == 0 && (in.trace != nil && in.tracedAt(stage.Qdisc, g.ifname, "TC_EGRESS") > 0 ||
			in.trace == nil && len(ing) == 0 && len(egr) > 0) {
			// The clsact qdisc's count is its egress filters' verdicts.
			out = append(out, Finding{
				Stage:    stage.Qdisc,
				Severity: in.lossSeverity(d),
				Title:    fmt.Sprintf("tc egress filters on %s dropped %d packets", g.ifname, d),
				Drops:    d,
				Evidence: evidence(g.counters),
				Cause:    fmt.Sprintf("a filter or action on %s's transmit side (its clsact qdisc) returned TC_ACT_SHOT: a policy refused these packets; no queue was full", g.ifname),
				Fix: append([]Fix{
					inspect(shellJoin("tc", "-s", "filter", "show", "dev", g.ifname, "egress"), "which filter drops"),
					inspect(shellJoin("bpftool", "net", "show", "dev", g.ifname), "the eBPF programs on the interface"),
				}, progFixes(egr)...),
				NotAutomatic: "a filter's verdict is a policy someone installed: netdrop does not change or remove it",
			})
			continue
		}
		f := Finding{
			Stage:    stage.TCIngress,
			Severity: in.lossSeverity(d),
			Title:    fmt.Sprintf("tc ingress filters on %s dropped %d packets", g.ifname, d),
			Drops:    d,
			Evidence: evidence(g.counters),
			Cause: fmt.Sprintf("a filter or action on %s's receive side (its ingress/clsact qdisc) returned TC_ACT_SHOT: "+
				"a policy, policer or eBPF datapath program refused these packets; no queue was full", g.ifname),
			Fix: append(append([]Fix{
				inspect(shellJoin("tc", "-s", "filter", "show", "dev", g.ifname, "ingress"), "which filter drops, and its actions"),
				inspect(shellJoin("bpftool", "net", "show", "dev", g.ifname), "the eBPF programs on the interface, tcx included"),
			}, progFixes(ing)...),
				advice(fmt.Sprintf("change the program's or filter's policy; if it should not be there, remove it (tc filter del dev %s ingress pref N)", g.ifname))),
			Advice:       "the drop is the filter's verdict, not a full queue: buffer and queue sizes do not help here",
			NotAutomatic: "a filter's verdict is a policy someone installed: netdrop does not change or remove it",
		}
		if len(ing) > 0 {
			f.Cause += " (attached: " + hookLabels(ing) + ")"
		}
		isTCX := func(h counters.Hook) bool { return h.Kind == "tcx" }
		if slices.ContainsFunc(ing, isTCX) {
			f.Title = fmt.Sprintf("tc ingress programs on %s dropped %d packets", g.ifname, d)
			f.Fix = tcxFixes(g.ifname, ing, !slices.ContainsFunc(ing, func(h counters.Hook) bool { return !isTCX(h) }) && len(g.counters) == 0)
			if len(g.counters) == 0 {
				f.Cause = fmt.Sprintf("a tcx program on %s's receive side returned TC_ACT_SHOT: a policy or eBPF datapath program refused these packets; no queue was full", g.ifname) +
					" (attached: " + hookLabels(ing) + ")"
				f.NotAutomatic = "a program's verdict is a policy someone installed: netdrop does not change or detach it"
			}
		}
		out = append(out, f)
	}
	return out
}

// tcxFixes are the fixes for drops at an ingress that holds tcx programs
// (hs, the interface's ingress hooks). tcx programs hang on BPF links, not
// on a qdisc: tc neither lists nor deletes them, so with tcx alone (onlyTCX)
// no tc command is offered; the link is what holds the program, detached by
// the agent that attached it (or, by hand, with bpftool).
func tcxFixes(ifname string, hs []counters.Hook, onlyTCX bool) []Fix {
	var out []Fix
	if !onlyTCX {
		out = append(out, inspect(shellJoin("tc", "-s", "filter", "show", "dev", ifname, "ingress"), "which tc filter drops, and its actions (tcx programs are not listed here)"))
	}
	out = append(out, inspect(shellJoin("bpftool", "net", "show", "dev", ifname), "the eBPF programs on the interface, tcx included (bpftool 7.3 and later)"))
	out = append(out, progFixes(hs)...)
	var links []uint32
	for _, h := range hs {
		if h.Kind == "tcx" && h.LinkID != 0 {
			links = append(links, h.LinkID)
		}
	}
	if len(links) == 0 {
		out = append(out, inspect("bpftool link show", "the tcx links: each one's id, program and the process holding it"))
	}
	for _, id := range links {
		out = append(out, inspect(shellJoin("bpftool", "link", "show", "id", strconv.FormatUint(uint64(id), 10)), "the tcx link holding the program, and the process holding it (pids)"))
	}
	out = append(out, advice("a tcx program is a BPF link, not a tc filter: change its policy in the agent that attached it (a CNI, a firewall daemon), or have that agent detach it; the link goes when its last holder closes it"))
	for _, id := range links {
		out = append(out, manual(shellJoin("bpftool", "link", "detach", "id", strconv.FormatUint(uint64(id), 10)), "",
			"force-detaches the program from "+ifname+" if no agent owns it any more; an agent that does may attach it again",
			"the program is a policy someone installed: netdrop does not detach it"))
	}
	if !onlyTCX {
		out = append(out, advice(fmt.Sprintf("a tc filter that should not be there is removed with tc filter del dev %s ingress pref N", ifname)))
	}
	return out
}

// ruleXDP: XDP programs that returned XDP_DROP or XDP_ABORTED. Native
// (driver) XDP frees no skb, so the tracer never sees it: the driver's XDP
// statistics (ethtool -S, e.g. xdp_drops) count it. Generic XDP frees an skb
// the tracer sees (reason XDP, or NOT_SPECIFIED in do_xdp_generic). The
// program's run count (bpf_stats_enabled) is context: runs, not drops.
func ruleXDP(in *input) []Finding {
	cs := in.moved(func(c counters.Counter) bool {
		return c.Stage == stage.XDP && c.Source == counters.EthtoolStats
	})
	runs := in.moved(from(counters.BPFProgStats))
	var out []Finding
	for _, g := range in.hookGroups(stage.XDP, cs) {
		hs := in.hooksAt(g.ifname, counters.HookXDP)
		d := g.drops()
		f := Finding{
			Stage:    stage.XDP,
			Severity: in.lossSeverity(d),
			Title:    fmt.Sprintf("XDP program on %s dropped %d packets", g.ifname, d),
			Drops:    d,
			Evidence: evidence(g.counters),
			Cause: fmt.Sprintf("an XDP program on %s returned XDP_DROP (or XDP_ABORTED) for these packets: "+
				"they were refused before the network stack saw them", g.ifname),
			Fix: append([]Fix{
				inspect(shellJoin("ip", "-d", "link", "show", "dev", g.ifname), "the XDP program and its mode (xdp, xdpgeneric)"),
				inspect(shellJoin("bpftool", "net", "show", "dev", g.ifname), "the eBPF programs on the interface"),
			}, progFixes(hs)...),
			Advice:       "an XDP verdict is the program's policy, not a full ring: ring, buffer and backlog sizes do not help here",
			NotAutomatic: "an XDP program is a policy someone installed: netdrop does not change or detach it",
		}
		if len(cs) > 0 {
			f.Fix = append(f.Fix, inspect(shellJoin("ethtool", "-S", g.ifname)+" | grep -i xdp", "the driver's XDP verdict counters"))
		}
		f.Fix = append(f.Fix, advice(fmt.Sprintf("change the program's rules, or detach it (ip link set dev %s xdp off) if it should not drop this traffic", g.ifname)))
		if len(hs) > 0 {
			f.Cause += " (attached: " + hookLabels(hs) + ")"
			for _, r := range runs {
				for _, h := range hs {
					if r.Object == counters.HookObject(h) {
						f.Evidence = append(f.Evidence, Evidence{Source: r.Source, Object: r.Object, Field: r.Field + " (runs, not drops)", Delta: r.Value})
					}
				}
			}
		}
		if len(g.rows) == 0 {
			f.Cause += "; native XDP frees no socket buffer, so only the driver's counters see these drops"
		}
		out = append(out, f)
	}
	return out
}

// bridgeCauses explain a bridge drop by its reason.
var bridgeCauses = map[string]string{
	"BRIDGE_INGRESS_STP_STATE": "the bridge port's STP state (disabled, blocking or listening) does not accept frames",
	"MAC_IEEE_MAC_CONTROL":     "IEEE 802.3 MAC control (pause) frames arrived on a bridge port; bridges never forward them",
}

// ruleBridge: frames a Linux bridge refused on a port. Only the tracer sees
// these (no bridge counter counts them).
func ruleBridge(in *input) []Finding {
	var out []Finding
	for _, g := range in.hookGroups(stage.Bridge, nil) {
		top := g.rows[0]
		port := g.ifname
		if port == "" {
			port = "PORT"
		}
		cause, ok := bridgeCauses[top.Reason]
		if !ok {
			cause = fmt.Sprintf("the bridge refused frames arriving on %s (%s in %s): the port is disabled or blocking (STP), VLAN filtering does not admit the frame's VLAN, or the port is locked", g.ifname, top.Reason, top.Function)
		}
		f := Finding{
			Stage:    stage.Bridge,
			Severity: in.lossSeverity(g.drops()),
			Title:    fmt.Sprintf("the bridge dropped %d frames arriving on %s", g.drops(), g.ifname),
			Drops:    g.drops(),
			Cause:    cause,
			Fix: []Fix{
				inspect(shellJoin("bridge", "-d", "link", "show", "dev", port), "the port's state, learning and locked flags"),
				inspect(shellJoin("bridge", "vlan", "show", "dev", port), "the VLANs the port admits"),
				advice("set the port forwarding (bridge link set dev PORT state 3) or admit its VLAN (bridge vlan add dev PORT vid N) once the reason is clear"),
			},
			NotAutomatic: bridgeNotAutomatic,
		}
		if p, ok := in.bridgePort(g.ifname); ok && top.Reason == "BRIDGE_INGRESS_STP_STATE" && p.Bridge != "" {
			f.Cause, f.Fix = stpCause(p)
		}
		out = append(out, f)
	}
	return out
}

// bridgeNotAutomatic is why netdrop changes no port state.
const bridgeNotAutomatic = "port states and VLAN filters are the bridge's configuration (or STP's decision): netdrop does not change them"

// stpWhy is why turning STP off or shortening its delay is left to a person.
const stpWhy = "STP is there to stop forwarding loops: whether this bridge can have one is known to whoever built the network, not to netdrop"

// bridgePort returns what the snapshot knows of the bridge port ifn.
func (in *input) bridgePort(ifn string) (counters.BridgePort, bool) {
	for _, p := range in.after.BridgePorts {
		if p.Port == ifn {
			return p, true
		}
	}
	return counters.BridgePort{}, false
}

// stpCause explains BRIDGE_INGRESS_STP_STATE drops by the port's STP state
// and its bridge's STP settings, with the fix that state calls for: a port
// STP holds in listening or learning waits for the forward delay (turn STP
// off where no loop is possible, or shorten the delay), a blocking port is
// STP breaking a loop (find the loop), a disabled port is down or was set
// so by hand.
func stpCause(p counters.BridgePort) (string, []Fix) {
	show := []Fix{
		inspect(shellJoin("bridge", "-d", "link", "show", "dev", p.Port), "the port's STP state"),
		inspect(shellJoin("ip", "-d", "link", "show", "dev", p.Bridge), "the bridge's stp_state, forward_delay and root"),
	}
	delay := p.ForwardDelay.String()
	switch {
	case (p.State == counters.PortListening || p.State == counters.PortLearning) && p.STP == 1:
		cause := fmt.Sprintf("port %s of bridge %s is in STP state %s: the bridge runs the kernel's STP (stp_state 1), which holds a port that comes up in listening and then in learning for forward_delay (%s) each, dropping what arrives, before it forwards", p.Port, p.Bridge, p.State, delay)
		return cause, append(show,
			manual(shellJoin("ip", "link", "set", "dev", p.Bridge, "type", "bridge", "stp_state", "0"), "stp_state 1",
				"where no loop is possible through this bridge (one uplink; a bridge for VMs or containers): without STP its ports forward at once", stpWhy),
			manual(shellJoin("ip", "link", "set", "dev", p.Bridge, "type", "bridge", "forward_delay", "200"), fmt.Sprintf("forward_delay %d (%s)", p.ForwardDelay.Milliseconds()/10, delay),
				"keep STP but wait 2 s, the least it allows, in listening and in learning", stpWhy))
	case (p.State == counters.PortListening || p.State == counters.PortLearning) && p.STP == 2:
		cause := fmt.Sprintf("port %s of bridge %s is in STP state %s: a user-space STP daemon (stp_state 2, mstpd) holds it there for its forward delay before it forwards", p.Port, p.Bridge, p.State)
		return cause, append(show, advice("in the STP daemon's configuration, make the port an edge port (mstpctl setportadminedge "+p.Bridge+" "+p.Port+" yes) if no switch is behind it, or shorten its forward delay"))
	case p.State == counters.PortBlocking && p.STP > 0:
		cause := fmt.Sprintf("STP blocks port %s of bridge %s: it found another path to the same segment (a loop) and keeps this port shut; the drops are STP doing its job unless that loop is not meant to exist", p.Port, p.Bridge)
		return cause, append(show, advice("find the second path (two ports of this bridge on one segment, or a loop through another switch) and remove it, or give the port you want forwarding a lower cost (bridge link set dev "+p.Port+" cost N)"))
	case p.STP == 0 && p.State != counters.PortForwarding:
		cause := fmt.Sprintf("port %s of bridge %s is in state %s although the bridge runs no STP (stp_state 0): the state was set by hand or by a program (disabled is also a port whose link is down)", p.Port, p.Bridge, p.State)
		return cause, append(show,
			inspect(shellJoin("ip", "link", "show", "dev", p.Port), "the port's operstate and carrier"),
			manual(shellJoin("bridge", "link", "set", "dev", p.Port, "state", "3"), "state "+p.State.String(),
				"forwarding; without STP nothing changes the state back", "a port state set by hand may be someone's intent: netdrop does not change it"))
	case p.State == counters.PortDisabled:
		cause := fmt.Sprintf("port %s of bridge %s is disabled: its link is down (no carrier), or it was set disabled; STP (stp_state %d) enables a port only once its link is up", p.Port, p.Bridge, p.STP)
		return cause, append(show, inspect(shellJoin("ip", "link", "show", "dev", p.Port), "the port's operstate and carrier"))
	}
	cause := fmt.Sprintf("the bridge %s refused frames on port %s for its STP state (%s now, stp_state %d): the state changed during the interval, or the drops came before it did", p.Bridge, p.Port, p.State, p.STP)
	return cause, show
}

// tunnelCauses explain a tunnel drop by its reason.
var tunnelCauses = map[string]string{
	"VXLAN_VNI_NOT_FOUND": "VXLAN packets arrived for a VNI no vxlan device on this host has: the sender's VNI (id) differs from this host's",
	"VXLAN_INVALID_HDR":   "VXLAN packets with flags or reserved bits this host's vxlan device does not accept (a peer using GBP or GPE, or not VXLAN at all)",
	"MAC_INVALID_SOURCE":  "the encapsulated frames carry an invalid source MAC (zero or multicast)",
	"LOCAL_MAC":           "the encapsulated frames carry this host's own MAC as source: a forwarding loop between tunnel endpoints",
	"VXLAN_ENTRY_EXISTS":  "the inner source MAC is pinned to another destination by a static FDB entry",
	"IP_TUNNEL_ECN":       "the outer and inner headers' ECN bits contradict each other (RFC 6040)",
}

// ruleTunnel: encapsulated packets a tunnel device refused on decapsulation.
// The encapsulating UDP socket counts them as delivered (Udp InDatagrams):
// only the tracer sees the drop.
func ruleTunnel(in *input) []Finding {
	var out []Finding
	// A tunnel device's receive error fields (rx_frame_errors, …) count
	// decapsulation faults on that device.
	cs := in.moved(func(c counters.Counter) bool {
		return c.Source == counters.NetlinkLinkStats && c.Stage == stage.Tunnel
	})
	for _, g := range in.hookGroups(stage.Tunnel, cs) {
		var cause, reason string
		if len(g.rows) > 0 {
			top := g.rows[0]
			reason = top.Reason
			var ok bool
			if cause, ok = tunnelCauses[top.Reason]; !ok {
				cause = fmt.Sprintf("a tunnel device refused encapsulated packets (%s in %s)", top.Reason, top.Function)
			}
		} else {
			var names []string
			for _, c := range g.counters {
				names = append(names, c.Field)
			}
			cause = fmt.Sprintf("the tunnel device %s counted decapsulation errors (%s): an inner/outer ECN conflict (rx_frame_errors), a checksum or sequence flag its peer does not honour, or a malformed inner header", g.ifname, strings.Join(names, ", "))
		}
		trace := inspect("netdrop trace --flows", "which tunnel peers send them")
		if reason != "" {
			trace = inspect(shellJoin("netdrop", "trace", "--reason", reason, "--flows"), "which tunnel peers send them")
		}
		out = append(out, Finding{
			Stage:    stage.Tunnel,
			Severity: in.lossSeverity(g.drops()),
			Title:    fmt.Sprintf("tunnel decapsulation dropped %d packets arriving on %s", g.drops(), g.ifname),
			Drops:    g.drops(),
			Evidence: evidence(g.counters),
			Cause:    cause,
			Fix: []Fix{
				inspect("ip -d link show type vxlan", "each vxlan device's id (VNI), dstport and remote"),
				trace,
				advice("make both tunnel endpoints agree (same VNI, port and flags): change the peer that sends, or add a device for its VNI here"),
			},
			NotAutomatic: "tunnel endpoints are configured in pairs: the change belongs on whichever side is wrong",
		})
	}
	return out
}
