package droptrace

import (
	"strings"
	"sync"

	"github.com/netdrop/netdrop/stage"
)

// ReasonClass says what kind of place a drop reason has: a stage of the
// packet path, or one of the explicit classes outside it. Every reason the
// kernel names gets exactly one; none is lumped into a stage it does not
// belong to, and none is left without a class.
type ReasonClass string

const (
	// ClassStage: the reason is loss at one stage of the packet path
	// (ReasonInfo.Stage).
	ClassStage ReasonClass = "stage"
	// ClassLocation: the reason says nothing by itself (NOT_SPECIFIED);
	// the freeing function decides the stage, or marks it noise.
	ClassLocation ReasonClass = "location"
	// ClassNoise: frees that are not packet loss (consumed packets, queue
	// purges on close, AF_UNIX). Shown apart, never ranked.
	ClassNoise ReasonClass = "noise"
	// ClassPolicy: a security or BPF policy outside the network stack's
	// stages refused the packet (an LSM, a cgroup BPF program, a socket
	// filter). Shown with its reason; what to change is the policy.
	ClassPolicy ReasonClass = "policy"
	// ClassOther: a drop outside the IP packet path (CAN buses, capture
	// sockets, a tap device's filter) or one no stage describes. Shown
	// with its reason.
	ClassOther ReasonClass = "other"
)

// ReasonInfo is the place of one drop reason and what it means.
type ReasonInfo struct {
	// Name is the reason without SKB_DROP_REASON_, as Reasons.Name gives it.
	Name string `json:"reason"`
	// Class is ClassStage when Stage is set, else the class outside the path.
	Class ReasonClass `json:"class"`
	Stage stage.ID    `json:"stage,omitempty"`
	// Meaning is one line for people.
	Meaning string `json:"meaning"`
	// ByLocation marks reasons whose stage the freeing function refines
	// (tc verdicts run on both directions, NETFILTER_DROP in conntrack).
	ByLocation bool `json:"by_location,omitempty"`
	// Fallback marks a reason this table does not know (a newer kernel, a
	// subsystem enum): its place was guessed conservatively from its name
	// prefix (see fallbackReason).
	Fallback bool `json:"fallback,omitempty"`
}

// r builds a table row on a stage.
func r(name string, s stage.ID, meaning string) ReasonInfo {
	return ReasonInfo{Name: name, Class: ClassStage, Stage: s, Meaning: meaning}
}

// c builds a table row of a class outside the path.
func c(name string, cl ReasonClass, meaning string) ReasonInfo {
	return ReasonInfo{Name: name, Class: cl, Meaning: meaning}
}

// byLoc marks a row whose stage the location refines.
func byLoc(ri ReasonInfo) ReasonInfo { ri.ByLocation = true; return ri }

// reasonTable places every core drop reason (enum skb_drop_reason in
// include/net/dropreason-core.h, up to Linux 6.18). The names are stable
// across kernels even though their values are not, so the table is keyed by
// name and the running kernel's BTF supplies the values. The direction of
// each stage is the direction the reason is raised on: NEIGH_* and
// SKB_UCOPY_FAULT are transmit, TC_INGRESS and XDP are receive.
var reasonTable = []ReasonInfo{
	c("NOT_DROPPED_YET", ClassNoise, "placeholder value: the packet was not dropped"),
	c("CONSUMED", ClassNoise, "the packet was used up normally (consume_skb), not dropped"),
	c("NOT_SPECIFIED", ClassLocation, "the caller gave no reason: the freeing function decides the stage, or marks it noise"),
	r("NO_SOCKET", stage.NoSocket, "no socket is bound to the destination address and port"),
	c("SOCKET_CLOSE", ClassNoise, "unread data freed because its socket was closed"),
	c("SOCKET_FILTER", ClassPolicy, "a BPF filter attached to the socket (SO_ATTACH_FILTER) rejected the packet"),
	r("SOCKET_RCVBUFF", stage.SocketRcvbuf, "the socket's receive buffer was full"),
	c("UNIX_DISCONNECT", ClassNoise, "AF_UNIX data freed when the peer disconnected: not the network"),
	c("UNIX_SKIP_OOB", ClassNoise, "AF_UNIX out-of-band byte skipped: not the network"),
	r("PKT_TOO_SMALL", stage.IP, "the packet is shorter than its headers claim"),
	r("TCP_CSUM", stage.TCP, "TCP checksum error"),
	r("UDP_CSUM", stage.IP, "UDP checksum error (counted as Udp InCsumErrors)"),
	byLoc(r("NETFILTER_DROP", stage.Netfilter, "a netfilter hook returned NF_DROP: an nftables/iptables rule, or conntrack refusing the packet")),
	r("OTHERHOST", stage.IP, "the frame was addressed to another host's MAC (promiscuous interface)"),
	r("IP_CSUM", stage.IP, "IPv4 header checksum error"),
	r("IP_INHDR", stage.IP, "invalid IP header (version, length, TTL)"),
	r("IP_RPFILTER", stage.IP, "reverse-path filter: the source is not routed back through the receiving interface"),
	r("UNICAST_IN_L2_MULTICAST", stage.IP, "an IP unicast packet in an L2 multicast or broadcast frame"),
	r("XFRM_POLICY", stage.IP, "IPsec (xfrm) policy check failed"),
	r("IP_NOPROTO", stage.IP, "no handler for the packet's IP protocol number"),
	r("PROTO_MEM", stage.SocketRcvbuf, "the protocol's memory limit (udp_mem, tcp_mem) was reached"),
	r("TCP_AUTH_HDR", stage.TCP, "TCP-MD5 or TCP-AO option malformed or both present"),
	r("TCP_MD5NOTFOUND", stage.TCP, "TCP-MD5 signature expected but missing"),
	r("TCP_MD5UNEXPECTED", stage.TCP, "TCP-MD5 signature present but not expected"),
	r("TCP_MD5FAILURE", stage.TCP, "TCP-MD5 signature wrong"),
	r("TCP_AONOTFOUND", stage.TCP, "TCP-AO option expected but missing"),
	r("TCP_AOUNEXPECTED", stage.TCP, "TCP-AO option present but not expected"),
	r("TCP_AOKEYNOTFOUND", stage.TCP, "TCP-AO key id not known"),
	r("TCP_AOFAILURE", stage.TCP, "TCP-AO MAC wrong"),
	r("SOCKET_BACKLOG", stage.SocketRcvbuf, "the socket's backlog (packets queued while the socket was owned by user space) was full"),
	r("TCP_FLAGS", stage.TCP, "TCP flags invalid for the connection's state"),
	r("TCP_ABORT_ON_DATA", stage.TCP, "data arrived for a TCP socket already closed by the application (answered with a RST)"),
	r("TCP_ZEROWINDOW", stage.SocketRcvbuf, "TCP data arrived while the receive window was zero: the reader is too slow"),
	r("TCP_OLD_DATA", stage.TCP, "TCP data already received (a retransmission)"),
	r("TCP_OVERWINDOW", stage.TCP, "TCP data beyond the advertised receive window"),
	r("TCP_OFOMERGE", stage.TCP, "TCP out-of-order data already in the out-of-order queue"),
	r("TCP_RFC7323_PAWS", stage.TCP, "TCP timestamp older than the last one seen (PAWS, RFC 7323)"),
	r("TCP_RFC7323_PAWS_ACK", stage.TCP, "TCP ACK failed the PAWS check"),
	r("TCP_RFC7323_TW_PAWS", stage.TCP, "TCP segment for a TIME_WAIT socket failed the PAWS check"),
	r("TCP_RFC7323_TSECR", stage.TCP, "TCP timestamp echo reply invalid"),
	r("TCP_LISTEN_OVERFLOW", stage.TCPListen, "the listener's SYN or accept queue was full"),
	r("TCP_OLD_SEQUENCE", stage.TCP, "TCP sequence number before the receive window"),
	r("TCP_INVALID_SEQUENCE", stage.TCP, "TCP sequence number outside the receive window"),
	r("TCP_INVALID_END_SEQUENCE", stage.TCP, "TCP segment ends outside the receive window"),
	r("TCP_INVALID_ACK_SEQUENCE", stage.TCP, "TCP ACK number not acceptable"),
	r("TCP_RESET", stage.TCP, "the segment carried a RST; the connection is being reset"),
	r("TCP_INVALID_SYN", stage.TCP, "TCP SYN received in a state that does not accept one"),
	r("TCP_CLOSE", stage.TCP, "TCP segment for a socket in CLOSE state"),
	r("TCP_FASTOPEN", stage.TCP, "TCP Fast Open data not accepted"),
	r("TCP_OLD_ACK", stage.TCP, "TCP ACK for data already acknowledged"),
	r("TCP_TOO_OLD_ACK", stage.TCP, "TCP ACK far older than the send window"),
	r("TCP_ACK_UNSENT_DATA", stage.TCP, "TCP ACK for data never sent"),
	r("TCP_OFO_QUEUE_PRUNE", stage.SocketRcvbuf, "TCP out-of-order queue pruned for lack of receive memory"),
	r("TCP_OFO_DROP", stage.TCP, "TCP data already in the receive queue (a duplicate); a full out-of-order queue drops with PROTO_MEM or TCP_OFO_QUEUE_PRUNE instead"),
	r("IP_OUTNOROUTES", stage.IP, "no route to forward or send the packet"),
	c("BPF_CGROUP_EGRESS", ClassPolicy, "a cgroup BPF egress program refused the packet"),
	r("IPV6DISABLED", stage.IP, "IPv6 is disabled on the interface"),
	r("NEIGH_CREATEFAIL", stage.Neighbor, "no neighbour (ARP/NDP) entry could be created"),
	r("NEIGH_FAILED", stage.Neighbor, "the neighbour did not answer ARP/NDP: resolution failed"),
	r("NEIGH_QUEUEFULL", stage.Neighbor, "the queue of packets waiting for ARP/NDP resolution was full"),
	r("NEIGH_DEAD", stage.Neighbor, "the neighbour entry was removed while packets waited"),
	r("NEIGH_HH_FILLFAIL", stage.Neighbor, "the cached link-layer header could not be filled in"),
	byLoc(r("TC_EGRESS", stage.Qdisc, "a tc egress filter or action returned TC_ACT_SHOT")),
	c("SECURITY_HOOK", ClassPolicy, "a Linux security module (SELinux, AppArmor, Smack) refused the packet"),
	r("QDISC_DROP", stage.Qdisc, "the qdisc's queue was full"),
	r("QDISC_OVERLIMIT", stage.Qdisc, "the qdisc dropped above its configured limit"),
	r("QDISC_CONGESTED", stage.Qdisc, "an AQM qdisc (codel, pie, red) dropped to signal congestion"),
	r("CAKE_FLOOD", stage.Qdisc, "cake's flood protection (BLUE) dropped an unresponsive flow's packet"),
	r("FQ_BAND_LIMIT", stage.Qdisc, "fq's per-band packet limit was reached"),
	r("FQ_HORIZON_LIMIT", stage.Qdisc, "fq dropped a packet timestamped beyond its horizon"),
	r("FQ_FLOW_LIMIT", stage.Qdisc, "fq's per-flow packet limit was reached"),
	r("CPU_BACKLOG", stage.Softirq, "the per-CPU receive backlog was full (netdev_max_backlog) or a flow hit the flow limit"),
	r("XDP", stage.XDP, "a generic-mode XDP program returned XDP_DROP or XDP_ABORTED"),
	byLoc(r("TC_INGRESS", stage.TCIngress, "a tc ingress filter, action or tcx program returned TC_ACT_SHOT")),
	r("UNHANDLED_PROTO", stage.IP, "no handler for the frame's protocol (ethertype or next header)"),
	r("SKB_CSUM", stage.IP, "computing the packet's checksum failed"),
	r("SKB_GSO_SEG", stage.TxRing, "segmenting a GSO packet for the device failed"),
	r("SKB_UCOPY_FAULT", stage.TxSocket, "copying the application's data from user space failed"),
	r("DEV_HDR", stage.RxRing, "the device driver found a bad link-layer header or frame"),
	r("DEV_READY", stage.TxRing, "the device was not up or its transmit queue stopped"),
	r("FULL_RING", stage.RxRing, "the device's ring was full (for veth: the peer's receive ring)"),
	r("NOMEM", stage.RxRing, "memory allocation failed in the driver or stack"),
	r("HDR_TRUNC", stage.IP, "a header was truncated: the packet ends inside it"),
	c("TAP_FILTER", ClassOther, "a tun/tap device's BPF filter dropped the packet"),
	c("TAP_TXFILTER", ClassOther, "a tap device's transmit filter (MAC/VLAN) dropped the packet"),
	r("ICMP_CSUM", stage.IP, "ICMP checksum error"),
	r("INVALID_PROTO", stage.IP, "the packet's protocol is not valid here (e.g. IPv6 over an IPv4-only path)"),
	r("IP_INADDRERRORS", stage.IP, "invalid destination address (Ip InAddrErrors)"),
	r("IP_INNOROUTES", stage.IP, "no route for the received packet (Ip InNoRoutes)"),
	r("IP_LOCAL_SOURCE", stage.IP, "the source address is one of this host's: a looped or spoofed packet"),
	r("IP_INVALID_SOURCE", stage.IP, "the source address is not valid (multicast, broadcast, martian)"),
	r("IP_LOCALNET", stage.IP, "a 127.0.0.0/8 address outside loopback (route_localnet is off)"),
	r("IP_INVALID_DEST", stage.IP, "the destination address is not valid for forwarding (e.g. a link-local on the wrong side)"),
	r("PKT_TOO_BIG", stage.IP, "the packet exceeds the MTU and may not be fragmented"),
	r("DUP_FRAG", stage.IP, "a duplicate IP fragment"),
	r("FRAG_REASM_TIMEOUT", stage.IP, "IP reassembly timed out: a fragment never came"),
	r("FRAG_TOO_FAR", stage.IP, "an IP fragment too far ahead of the others (ipfrag_max_dist)"),
	r("TCP_MINTTL", stage.TCP, "TCP segment below the socket's minimum TTL (IP_MINTTL)"),
	r("IPV6_BAD_EXTHDR", stage.IP, "a malformed IPv6 extension header"),
	r("IPV6_TOO_MANY_EXTHDRS", stage.IP, "more IPv6 extension headers than the limit allows"),
	r("IPV6_NDISC_FRAG", stage.IP, "a fragmented neighbour discovery message (not allowed)"),
	r("IPV6_NDISC_HOP_LIMIT", stage.IP, "a neighbour discovery message with hop limit other than 255"),
	r("IPV6_NDISC_BAD_CODE", stage.IP, "a neighbour discovery message with a non-zero ICMPv6 code"),
	r("IPV6_NDISC_BAD_OPTIONS", stage.IP, "a neighbour discovery message with invalid options"),
	r("IPV6_NDISC_NS_OTHERHOST", stage.IP, "a neighbour solicitation for an address not of this host"),
	c("QUEUE_PURGE", ClassNoise, "a queue emptied because its owner went away"),
	byLoc(r("TC_COOKIE_ERROR", stage.Qdisc, "a tc action's cookie could not be processed")),
	c("PACKET_SOCK_ERROR", ClassOther, "a capture socket (AF_PACKET, e.g. tcpdump) lost its copy: the traffic itself was not dropped"),
	byLoc(r("TC_CHAIN_NOTFOUND", stage.Qdisc, "a tc action jumped to a chain that does not exist")),
	byLoc(r("TC_RECLASSIFY_LOOP", stage.Qdisc, "tc reclassification looped too many times")),
	r("VXLAN_INVALID_HDR", stage.Tunnel, "a VXLAN header with unknown flags or reserved bits set"),
	r("VXLAN_VNI_NOT_FOUND", stage.Tunnel, "no VXLAN device on this host has the packet's VNI"),
	r("MAC_INVALID_SOURCE", stage.Tunnel, "the inner frame's source MAC is invalid (zero, multicast)"),
	r("VXLAN_ENTRY_EXISTS", stage.Tunnel, "the inner source MAC is a static FDB entry of another destination"),
	r("NO_TX_TARGET", stage.TxRing, "a tunnel device (vxlan) has no destination for the frame: no FDB entry or remote"),
	r("IP_TUNNEL_ECN", stage.Tunnel, "decapsulation found ECN bits the outer and inner headers disagree on"),
	r("TUNNEL_TXINFO", stage.TxRing, "a metadata-based tunnel device was given a packet without tunnel metadata"),
	r("LOCAL_MAC", stage.Tunnel, "the inner frame's source MAC is this device's own: a loop"),
	c("ARP_PVLAN_DISABLE", ClassPolicy, "an ARP request not proxied back on its port (proxy_arp_pvlan is off)"),
	r("MAC_IEEE_MAC_CONTROL", stage.Bridge, "an IEEE 802.3 MAC control frame (pause) arrived on a bridge port"),
	r("BRIDGE_INGRESS_STP_STATE", stage.Bridge, "the bridge port's STP state (disabled, blocking, listening) does not accept frames"),
	c("CAN_RX_INVALID_FRAME", ClassOther, "an invalid CAN frame: a CAN bus, not IP networking"),
	c("CANFD_RX_INVALID_FRAME", ClassOther, "an invalid CAN FD frame: a CAN bus, not IP networking"),
	c("CANXL_RX_INVALID_FRAME", ClassOther, "an invalid CAN XL frame: a CAN bus, not IP networking"),
	c("PFMEMALLOC", ClassOther, "a packet from the emergency memory reserve reached a socket not allowed to use it: host memory pressure"),
	r("DUALPI2_STEP_DROP", stage.Qdisc, "dualpi2's step AQM dropped above its queue threshold"),
	r("PSP_INPUT", stage.IP, "PSP (encryption) checks failed on receive"),
	c("PSP_OUTPUT", ClassPolicy, "PSP (encryption) checks refused the packet on transmit"),
	r("RECURSION_LIMIT", stage.TxRing, "transmit recursion too deep: a loop of stacked or tunnel devices"),
	r("SKB_RX_HEADROOM", stage.RxRing, "the received packet lacks the headroom a device needs"),
}

// reasonIndex is reasonTable by name, built on first use (not at package
// init, which every start of netdrop pays).
var reasonIndex = sync.OnceValue(func() map[string]ReasonInfo {
	m := make(map[string]ReasonInfo, len(reasonTable))
	for _, ri := range reasonTable {
		if _, dup := m[ri.Name]; dup {
			panic("droptrace: reason listed twice: " + ri.Name)
		}
		m[ri.Name] = ri
	}
	return m
})

// fallbackPrefixes place a reason the table does not know by its name: the
// kernel names reasons by subsystem (TCP_, IPV6_, NEIGH_, VXLAN_, …), and a
// new reason joins its family's stage far more often than not. Only
// families whose every member so far lies on one stage in one direction are
// listed; everything else is ClassOther, shown with its reason, rather
// than a guess that could send a user to the wrong fix. TC_ is absent:
// tc verdicts run on both directions (the location decides, see Classify).
var fallbackPrefixes = []struct {
	prefix string
	stage  stage.ID
}{
	{"TCP_LISTEN", stage.TCPListen},
	{"TCP_", stage.TCP},
	{"IPV6_", stage.IP},
	{"IP_", stage.IP},
	{"FRAG_", stage.IP},
	{"NEIGH_", stage.Neighbor},
	{"QDISC_", stage.Qdisc},
	{"FQ_", stage.Qdisc},
	{"CAKE_", stage.Qdisc},
	{"XDP", stage.XDP},
	{"VXLAN_", stage.Tunnel},
	{"GENEVE_", stage.Tunnel},
	{"BRIDGE_", stage.Bridge},
}

// fallbackReason places a reason this table does not know: subsystem
// reasons ("OPENVSWITCH:3", names from a subsystem enum), unnamed codes
// ("REASON_140") and core reasons newer than the table.
func fallbackReason(name string) ReasonInfo {
	ri := ReasonInfo{Name: name, Class: ClassOther, Fallback: true}
	switch {
	case strings.HasPrefix(name, "REASON_") || strings.HasPrefix(name, "SUBSYS_"):
		ri.Class = ClassLocation
		ri.Meaning = "a reason value this kernel does not name: the freeing function decides the stage"
		return ri
	case strings.HasPrefix(name, "OVS_") || strings.HasPrefix(name, "OPENVSWITCH"):
		ri.Meaning = "an Open vSwitch datapath drop (ovs-dpctl show, ovs-appctl dpctl/dump-flows)"
		return ri
	case strings.HasPrefix(name, "RX_DROP_") || strings.HasPrefix(name, "MAC80211"):
		ri.Meaning = "a mac80211 (Wi-Fi) receive drop"
		return ri
	case strings.HasPrefix(name, "UNIX_"):
		ri.Class = ClassNoise
		ri.Meaning = "AF_UNIX: not the network"
		return ri
	}
	for _, p := range fallbackPrefixes {
		if strings.HasPrefix(name, p.prefix) {
			ri.Class, ri.Stage = ClassStage, p.stage
			ri.Meaning = "not in netdrop's table (newer kernel): placed by its " + strings.TrimSuffix(p.prefix, "_") + " prefix"
			return ri
		}
	}
	ri.Meaning = "not in netdrop's table (newer kernel or a subsystem): shown with its reason"
	return ri
}

// LookupReason returns the place of a reason by name (as Reasons.Name gives
// it). A reason the table does not know gets its fallback place, marked
// Fallback, so every reason has one.
func LookupReason(name string) ReasonInfo {
	if ri, ok := reasonIndex()[name]; ok {
		return ri
	}
	return fallbackReason(name)
}

// KnownReason reports whether the table places name itself (not by
// fallback).
func KnownReason(name string) bool {
	_, ok := reasonIndex()[name]
	return ok
}

// ReasonTable lists the place of every reason the kernel names, in the
// kernel's order (by value); with a nil r, the table's own reasons in table
// order. Sentinels that are not reasons (MAX) are left out.
func ReasonTable(rs *Reasons) []ReasonInfo {
	if rs == nil {
		out := make([]ReasonInfo, len(reasonTable))
		copy(out, reasonTable)
		return out
	}
	var out []ReasonInfo
	for _, n := range rs.Names() {
		if n == "MAX" {
			continue
		}
		out = append(out, LookupReason(n))
	}
	return out
}
