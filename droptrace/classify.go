package droptrace

import (
	"slices"
	"strings"

	"github.com/netdrop/netdrop/stage"
)

// Class is what one drop row means on the packet path.
type Class struct {
	// Stage is where the packet was lost, "" when neither the reason nor
	// the location says (a driver's own reason, a tunnel, a policy hook).
	Stage stage.ID `json:"stage,omitempty"`
	// Alt is a second stage the same (reason, location) can mean; the
	// caller picks it when other evidence points there. NETFILTER_DROP at
	// nf_hook_slow is a DROP verdict of a non-nftables hook: a legacy
	// iptables rule, or nf_conntrack_in refusing a packet because the
	// conntrack table is full. Only the conntrack counters tell them apart.
	Alt stage.ID `json:"alt_stage,omitempty"`
	// Noise marks frees that are not loss: queue purges when a socket
	// closes, multicast not for this host, consumed packets.
	Noise bool `json:"noise,omitempty"`
	// Class is the reason's place (see ReasonClass): ClassStage with a
	// Stage, ClassNoise with Noise, ClassPolicy or ClassOther for drops
	// outside the stages, which are shown with their reason.
	Class ReasonClass `json:"class,omitempty"`
}

// noiseFuncs free with NOT_SPECIFIED (or, before 5.17, no reason) while
// tearing down queues or delivering multicast that is not for this host.
var noiseFuncs = []string{
	"skb_queue_purge", "__skb_queue_purge", "skb_rbtree_purge",
	"unix_", "netlink_", "inet_sock_destruct", "sk_common_release",
	"udp_destruct_common", "udp_destruct_sock", "__sk_destruct",
	"ip6_mc_input", "ip_mc_output", "ip_mr_input", "packet_rcv", "tpacket_rcv",
}

// funcStage classifies by the freeing function when the reason does not say
// (NOT_SPECIFIED, kernels before 5.17). Entries are exact names or, ending
// in "*", prefixes; the first match wins.
var funcStage = []struct {
	fn    string
	stage stage.ID
}{
	{"nft_do_chain", stage.Netfilter},
	{"nf_hook_slow", stage.Netfilter},
	{"ipt_do_table", stage.Netfilter},
	{"ip6t_do_table", stage.Netfilter},
	{"nf_conntrack*", stage.Conntrack},
	{"__nf_conntrack*", stage.Conntrack},
	{"enqueue_to_backlog", stage.Softirq},
	{"__udp4_lib_rcv", stage.NoSocket},
	{"__udp6_lib_rcv", stage.NoSocket},
	{"__udp_enqueue_schedule_skb", stage.SocketRcvbuf},
	{"__udp_queue_rcv_skb", stage.SocketRcvbuf},
	{"udp_queue_rcv_one_skb", stage.SocketRcvbuf},
	{"tcp_conn_request", stage.TCPListen},
	{"tcp_v4_syn_recv_sock", stage.TCPListen},
	{"tcp_v6_syn_recv_sock", stage.TCPListen},
	{"tcp_*", stage.TCP},
	{"__dev_queue_xmit", stage.Qdisc},
	{"qdisc_*", stage.Qdisc},
	{"__qdisc_*", stage.Qdisc},
	{"neigh_*", stage.Neighbor},
	{"__neigh_*", stage.Neighbor},
	{"arp_*", stage.Neighbor},
	{"ip_rcv*", stage.IP},
	{"ip6_rcv*", stage.IP},
	{"ipv6_rcv*", stage.IP},
	{"ip_route_input*", stage.IP},
	{"ip_forward*", stage.IP},
	{"ip6_forward*", stage.IP},
	{"ip_defrag*", stage.IP},
	{"ip_frag_*", stage.IP},
	// The receive-side hooks and L2/L3 devices, for kernels whose
	// reasons do not say (and NOT_SPECIFIED frees inside them).
	{"do_xdp_generic", stage.XDP},
	{"veth_xdp_rcv_skb", stage.XDP}, // native XDP on veth: the skb behind the XDP buffer
	{"netif_receive_generic_xdp", stage.XDP},
	{"bpf_prog_run_generic_xdp", stage.XDP},
	{"sch_handle_ingress", stage.TCIngress},
	{"tcx_run", stage.TCIngress},
	{"br_*", stage.Bridge},
	{"__br_*", stage.Bridge},
	{"nbp_*", stage.Bridge},
	{"vxlan_*", stage.Tunnel},
	{"geneve_*", stage.Tunnel},
	{"ip_tunnel_rcv", stage.Tunnel},
	{"__iptunnel_pull_header", stage.Tunnel},
	{"gre_rcv", stage.Tunnel},
	{"ipgre_rcv", stage.Tunnel},
}

// tcIngressFuncs are the functions a tc verdict on the receive side is
// freed in: sch_handle_ingress, or __netif_receive_skb_core where the
// compiler inlined it. Everywhere else (sch_handle_egress, __dev_queue_xmit)
// a tc verdict is on the transmit side.
var tcIngressFuncs = []string{"sch_handle_ingress", "tcx_run", "__netif_receive_skb_core", "netif_receive_skb"}

// tcStage places a tc verdict (TC_INGRESS, TC_EGRESS, TC_COOKIE_ERROR, …)
// by the function that freed it; def when the function does not say.
func tcStage(function string, def stage.ID) stage.ID {
	for _, f := range tcIngressFuncs {
		if strings.HasPrefix(function, f) {
			return stage.TCIngress
		}
	}
	if strings.HasPrefix(function, "sch_handle_egress") || strings.HasPrefix(function, "__dev_queue_xmit") {
		return stage.Qdisc
	}
	return def
}

// Classify maps a drop to a stage from its reason name (as Reasons.Name
// gives it; "" when the kernel has no reasons) and the function it was
// freed in. It is a pure table: the place of each reason is in reasonTable
// (LookupReason), the freeing function refines the reasons that say little
// by themselves, and diagnose folds the result into findings and may prefer
// Alt when counters point there.
func Classify(reason, function string) Class {
	ri := ReasonInfo{Class: ClassLocation}
	if reason != "" {
		ri = LookupReason(reason)
	}
	switch ri.Class {
	case ClassNoise:
		return Class{Noise: true, Class: ClassNoise}
	case ClassPolicy, ClassOther:
		return Class{Class: ri.Class}
	case ClassStage:
		switch {
		case reason == "NETFILTER_DROP":
			switch {
			case strings.HasPrefix(function, "nf_conntrack") || strings.HasPrefix(function, "__nf_conntrack"):
				return Class{Stage: stage.Conntrack, Class: ClassStage}
			case function == "nf_hook_slow":
				return Class{Stage: stage.Netfilter, Alt: stage.Conntrack, Class: ClassStage}
			}
		case ri.ByLocation:
			return Class{Stage: tcStage(function, ri.Stage), Class: ClassStage}
		}
		return Class{Stage: ri.Stage, Class: ClassStage}
	}
	// ClassLocation: NOT_SPECIFIED, an unnamed value, or no reasons at all.
	for _, p := range noiseFuncs {
		if strings.HasPrefix(function, p) {
			return Class{Noise: true, Class: ClassNoise}
		}
	}
	if function == "nf_hook_slow" {
		return Class{Stage: stage.Netfilter, Alt: stage.Conntrack, Class: ClassStage}
	}
	for _, e := range funcStage {
		if p, ok := strings.CutSuffix(e.fn, "*"); ok {
			if strings.HasPrefix(function, p) {
				return Class{Stage: e.stage, Class: ClassStage}
			}
		} else if function == e.fn {
			return Class{Stage: e.stage, Class: ClassStage}
		}
	}
	return Class{Class: ClassOther}
}

// maxNoise is how many noise reasons the BPF program skips the optional
// work for (MAX_NOISE in bpf/droptrace.c); a kernel with more only loses a
// little of the saving.
const maxNoise = 8

// noiseCodes returns the values, on the kernel r names, of the reasons
// that are not packet loss (ClassNoise in the reason table), lowest
// first, so that the program parses no flow and walks no stack for them;
// nil without reasons.
func noiseCodes(r *Reasons) []uint32 {
	if r == nil {
		return nil
	}
	var out []uint32
	for code, name := range r.names {
		if LookupReason(name).Class == ClassNoise {
			out = append(out, code)
		}
	}
	slices.Sort(out)
	return out
}
