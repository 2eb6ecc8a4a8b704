package probe

import (
	"net"
	"sort"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// Attribution splits the frames a run lost among the stages of the packet
// path whose drop counters moved during the run.
type Attribution struct {
	Lost   uint64      `json:"lost"`
	Stages []StageLoss `json:"stages"`
	// Unaccounted is what no counter explains: loss beyond this host (a
	// network between two hosts), or a stage netdrop has no counter for.
	Unaccounted uint64 `json:"unaccounted"`
	// Places says how each place of the path was watched (traced or
	// counters only, and why). Reports of netdrop before version 2 have
	// none.
	Places []Place `json:"places,omitempty"`
}

// StageLoss is the share of the lost frames given to one stage.
type StageLoss struct {
	Stage stage.ID `json:"stage"`
	// Side is "sender" for stages on the sending host when the two ends
	// are on different hosts, "hop" for a host in between (named by Hop);
	// empty for the receiving host (or both, when local).
	Side   string `json:"side,omitempty"`
	Hop    string `json:"hop,omitempty"`
	Frames uint64 `json:"frames"`
	// Exact is true when the evidence counts this probe's own frames only
	// (the probe socket's drop counter, or the drop tracer's count of the
	// probe's 5-tuple), false when it is a host or
	// namespace counter that other traffic may also have moved.
	Exact    bool       `json:"exact"`
	Evidence []Evidence `json:"evidence"`
	// MoreEvidence counts counters of this stage that moved but are left
	// out of Evidence (the largest maxEvidence are kept), so a report
	// always fits in one datagram.
	MoreEvidence int `json:"more_evidence,omitempty"`
}

const maxEvidence = 8

// Evidence is one counter that moved during the run.
type Evidence struct {
	Source counters.SourceID `json:"source"`
	Object string            `json:"object,omitempty"`
	Field  string            `json:"field"`
	Delta  uint64            `json:"delta"`
}

// SocketDropsSource names the per-socket drop counter in evidence.
const SocketDropsSource counters.SourceID = "SO_MEMINFO / SO_RXQ_OVFL of the probe socket"

// txOrder is the order in which transmit-path stages are credited. A frame
// the probe counts as sent has left its socket (the sender waits out a full
// send buffer instead of dropping), so the socket stage comes last: the
// kernel also counts a qdisc drop as Udp:SndbufErrors, because
// udp_send_skb() turns the qdisc's ENOBUFS into success and counts it there
// (net/ipv4/udp.c), and crediting tx-socket first would blame the wrong stage.
var txOrder = []stage.ID{stage.Qdisc, stage.Neighbor, stage.TxRing, stage.TxSocket, stage.Ports}

// notDrops are fields some sources tag with a stage that count events which
// are not losses: a qdisc's overlimits (throttled, queued) and requeues.
var notDrops = map[string]bool{"overlimits": true, "requeues": true}

// tcpOnly are stages a UDP probe's frames never meet.
var tcpOnly = map[stage.ID]bool{stage.TCPListen: true, stage.TCP: true, stage.Ports: true}

// Attribute gives each lost frame to at most one stage. The probe socket's
// own drop counter comes first and is exact: the kernel counted those drops
// on this socket and no other. Then the stages in packet order, first with
// counters of the receiver's namespace (its links, rules, SNMP counters) and
// only then with host-wide ones (softnet_stat, NIC), because on a busy host
// a host-wide counter also moves with everyone else's traffic and would
// otherwise claim frames a namespace counter explains exactly. Each stage
// gets at most the largest of its counters' deltas (counters of one stage
// often nest, Udp:InErrors includes Udp:RcvbufErrors, so summing them would
// count a drop twice) and never more than is still unexplained. What is
// left is unaccounted.
//
// delta may be nil (no counters could be read); then only the socket's own
// drops are attributed.
//
// framesPerDrop is 1 unless the socket uses UDP_GRO: then one drop may be a
// coalesced buffer of up to that many frames, and the socket's share is an
// upper bound, no longer exact.
func Attribute(lost, socketDrops, framesPerDrop uint64, delta *counters.Snapshot, t Traffic) Attribution {
	a := Attribution{Lost: lost, Stages: []StageLoss{}}
	left := lost
	ev := evidence(delta, t)
	// The socket stage first: exact.
	framesPerDrop = max(framesPerDrop, 1)
	if n := min(socketDrops*framesPerDrop, left); n > 0 {
		left -= n
		e := append([]Evidence{{Source: SocketDropsSource, Field: "sk_drops", Delta: socketDrops}}, ev.byStage[stage.SocketRcvbuf]...)
		a.Stages = append(a.Stages, capEvidence(StageLoss{Stage: stage.SocketRcvbuf, Frames: n, Exact: framesPerDrop == 1, Evidence: e}))
	}
	var ids []stage.ID
	for _, id := range append(stage.OnPath(stage.RX), txOrder...) {
		if id != stage.SocketRcvbuf && !(t.UDP && tcpOnly[id]) {
			ids = append(ids, id)
		}
	}
	a.Stages = append(a.Stages, ev.spread(&left, ids, "", "")...)
	a.Unaccounted = left
	return a
}

// AttributeSender adds the sending host's share when the two ends are on
// different hosts: frames the receiver could not explain are given to the
// transmit-path stages (send buffer, qdisc, neighbour, TX ring) whose
// counters moved on the sender during the run.
func AttributeSender(a Attribution, delta *counters.Snapshot, t Traffic) Attribution {
	if delta == nil || a.Unaccounted == 0 {
		return a
	}
	left := a.Unaccounted
	a.Stages = append(a.Stages, evidence(delta, t).spread(&left, txOrder, "sender", "")...)
	a.Unaccounted = left
	return a
}

type stageEvidence struct {
	byStage  map[stage.ID][]Evidence
	maxDelta map[stageKey]uint64
}

type stageKey struct {
	id       stage.ID
	hostWide bool
}

// Traffic says what the probe sent, so that counters of other protocols
// (IPv6 neighbour discovery on a link carrying an IPv4 probe, TCP counters
// under a UDP probe) are not taken as evidence.
type Traffic struct {
	UDP  bool
	IPv6 bool
}

// TrafficOf describes a probe over proto ("udp" or "tcp") to or from addr.
func TrafficOf(proto string, addr net.Addr) Traffic {
	t := Traffic{UDP: proto == "udp"}
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	}
	t.IPv6 = ip != nil && ip.To4() == nil
	return t
}

// relevant reports whether a counter named field (SNMP "Group:Name" style)
// can count this traffic. Fields without a protocol group always can.
func (t Traffic) relevant(field string) bool {
	group, _, ok := strings.Cut(field, ":")
	if !ok {
		return true
	}
	switch group {
	case "Ip6", "Icmp6", "Udp6", "UdpLite6":
		return t.IPv6 && (t.UDP || group != "Udp6")
	case "Ip", "IpExt", "Icmp", "IcmpMsg":
		return !t.IPv6
	case "Udp", "UdpLite":
		return !t.IPv6 && t.UDP
	case "Tcp", "TcpExt", "MPTcpExt":
		return !t.UDP
	}
	return true
}

func evidence(delta *counters.Snapshot, t Traffic) stageEvidence {
	e := stageEvidence{byStage: map[stage.ID][]Evidence{}, maxDelta: map[stageKey]uint64{}}
	if delta == nil {
		return e
	}
	for _, c := range delta.Counters {
		// Only counters of packets dropped can explain a lost frame: a
		// softirq time_squeeze or a neighbour resolution failure is an
		// event, not a frame (counters.Unit).
		if c.Stage == "" || c.Unit() != counters.Drops || c.Value == 0 || notDrops[c.Field] || !t.relevant(c.Field) {
			continue
		}
		e.byStage[c.Stage] = append(e.byStage[c.Stage], Evidence{Source: c.Source, Object: c.Object, Field: c.Field, Delta: c.Value})
		k := stageKey{c.Stage, c.HostWide}
		e.maxDelta[k] = max(e.maxDelta[k], c.Value)
	}
	for _, ev := range e.byStage {
		sort.SliceStable(ev, func(i, j int) bool { return ev[i].Delta > ev[j].Delta })
	}
	return e
}

// spread gives frames from *left to the stages ids, in that order, first by
// namespace counters and then by host-wide ones.
func (e stageEvidence) spread(left *uint64, ids []stage.ID, side, hop string) []StageLoss {
	frames := map[stage.ID]uint64{}
	for _, hostWide := range []bool{false, true} {
		for _, id := range ids {
			if *left == 0 {
				break
			}
			d := e.maxDelta[stageKey{id, hostWide}]
			// A stage's namespace counter and host counter may count the
			// same drops: the host pass only adds what exceeds the first.
			if hostWide {
				d -= min(d, frames[id])
			}
			n := min(d, *left)
			*left -= n
			frames[id] += n
		}
	}
	var out []StageLoss
	for _, id := range ids {
		if n := frames[id]; n > 0 {
			out = append(out, capEvidence(StageLoss{Stage: id, Side: side, Hop: hop, Frames: n, Evidence: e.byStage[id]}))
		}
	}
	return out
}

func capEvidence(s StageLoss) StageLoss {
	if len(s.Evidence) > maxEvidence {
		s.MoreEvidence = len(s.Evidence) - maxEvidence
		s.Evidence = s.Evidence[:maxEvidence]
	}
	return s
}
