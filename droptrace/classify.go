package droptrace

import (
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
}

// reasonStage maps core drop reasons (the names of enum skb_drop_reason,
// stable across kernels even though their values are not) to stages. A
// reason missing here is classified by its location, then left without a
// stage. Names from include/net/dropreason-core.h.
var reasonStage = map[string]stage.ID{
	"NO_SOCKET": stage.NoSocket,

	"SOCKET_RCVBUFF":      stage.SocketRcvbuf,
	"SOCKET_BACKLOG":      stage.SocketRcvbuf,
	"PROTO_MEM":           stage.SocketRcvbuf,
	"TCP_ZEROWINDOW":      stage.SocketRcvbuf,
	"TCP_OFO_QUEUE_PRUNE": stage.SocketRcvbuf,

	"TCP_LISTEN_OVERFLOW": stage.TCPListen,

	"NETFILTER_DROP": stage.Netfilter,

	"CPU_BACKLOG": stage.Softirq,

	"QDISC_DROP":         stage.Qdisc,
	"QDISC_OVERLIMIT":    stage.Qdisc,
	"QDISC_CONGESTED":    stage.Qdisc,
	"CAKE_FLOOD":         stage.Qdisc,
	"FQ_BAND_LIMIT":      stage.Qdisc,
	"FQ_HORIZON_LIMIT":   stage.Qdisc,
	"FQ_FLOW_LIMIT":      stage.Qdisc,
	"DUALPI2_STEP_DROP":  stage.Qdisc,
	"TC_EGRESS":          stage.Qdisc,
	"TC_INGRESS":         stage.Qdisc,
	"TC_COOKIE_ERROR":    stage.Qdisc,
	"TC_CHAIN_NOTFOUND":  stage.Qdisc,
	"TC_RECLASSIFY_LOOP": stage.Qdisc,

	"NEIGH_CREATEFAIL":  stage.Neighbor,
	"NEIGH_FAILED":      stage.Neighbor,
	"NEIGH_QUEUEFULL":   stage.Neighbor,
	"NEIGH_DEAD":        stage.Neighbor,
	"NEIGH_HH_FILLFAIL": stage.Neighbor,

	"FULL_RING": stage.RxRing,
	"NOMEM":     stage.RxRing,
	"DEV_HDR":   stage.RxRing,
	"XDP":       stage.RxRing,
	"DEV_READY": stage.TxRing,

	"PKT_TOO_SMALL":           stage.IP,
	"IP_CSUM":                 stage.IP,
	"IP_INHDR":                stage.IP,
	"IP_RPFILTER":             stage.IP,
	"OTHERHOST":               stage.IP,
	"UNICAST_IN_L2_MULTICAST": stage.IP,
	"XFRM_POLICY":             stage.IP,
	"IP_NOPROTO":              stage.IP,
	"IP_OUTNOROUTES":          stage.IP,
	"IPV6DISABLED":            stage.IP,
	"IP_INADDRERRORS":         stage.IP,
	"IP_INNOROUTES":           stage.IP,
	"IP_LOCAL_SOURCE":         stage.IP,
	"IP_INVALID_SOURCE":       stage.IP,
	"IP_LOCALNET":             stage.IP,
	"IP_INVALID_DEST":         stage.IP,
	"PKT_TOO_BIG":             stage.IP,
	"DUP_FRAG":                stage.IP,
	"FRAG_REASM_TIMEOUT":      stage.IP,
	"FRAG_TOO_FAR":            stage.IP,
	"IPV6_BAD_EXTHDR":         stage.IP,
	"IPV6_NDISC_FRAG":         stage.IP,
	"IPV6_NDISC_HOP_LIMIT":    stage.IP,
	"IPV6_NDISC_BAD_CODE":     stage.IP,
	"IPV6_NDISC_BAD_OPTIONS":  stage.IP,
	"IPV6_NDISC_NS_OTHERHOST": stage.IP,
	"UDP_CSUM":                stage.IP,
	"ICMP_CSUM":               stage.IP,
	"INVALID_PROTO":           stage.IP,
	"UNHANDLED_PROTO":         stage.IP,
	"HDR_TRUNC":               stage.IP,
}

// noiseReasons are frees that are not packet loss on the path.
var noiseReasons = map[string]bool{
	"NOT_DROPPED_YET": true,
	"CONSUMED":        true,
	"QUEUE_PURGE":     true, // a queue emptied because its owner went away
	"SOCKET_CLOSE":    true, // unread data freed when the socket closed
	"UNIX_DISCONNECT": true, // AF_UNIX, not the network
	"UNIX_SKIP_OOB":   true,
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
}

// Classify maps a drop to a stage from its reason name (as Reasons.Name
// gives it; "" when the kernel has no reasons) and the function it was
// freed in. It is a pure table: the lead's diagnose folds its result into
// findings and may prefer Alt when counters point there.
func Classify(reason, function string) Class {
	if noiseReasons[reason] {
		return Class{Noise: true}
	}
	unspecified := reason == "" || reason == "NOT_SPECIFIED" || strings.HasPrefix(reason, "REASON_")
	if unspecified {
		for _, p := range noiseFuncs {
			if strings.HasPrefix(function, p) {
				return Class{Noise: true}
			}
		}
	}
	if reason == "NETFILTER_DROP" {
		switch {
		case strings.HasPrefix(function, "nf_conntrack") || strings.HasPrefix(function, "__nf_conntrack"):
			return Class{Stage: stage.Conntrack}
		case function == "nf_hook_slow":
			return Class{Stage: stage.Netfilter, Alt: stage.Conntrack}
		}
		return Class{Stage: stage.Netfilter}
	}
	if s, ok := reasonStage[reason]; ok {
		return Class{Stage: s}
	}
	if strings.HasPrefix(reason, "TCP_") {
		return Class{Stage: stage.TCP}
	}
	if !unspecified {
		return Class{}
	}
	if function == "nf_hook_slow" {
		return Class{Stage: stage.Netfilter, Alt: stage.Conntrack}
	}
	for _, e := range funcStage {
		if p, ok := strings.CutSuffix(e.fn, "*"); ok {
			if strings.HasPrefix(function, p) {
				return Class{Stage: e.stage}
			}
		} else if function == e.fn {
			return Class{Stage: e.stage}
		}
	}
	return Class{}
}
