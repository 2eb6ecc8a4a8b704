package probe

import (
	"sort"

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
}

// StageLoss is the share of the lost frames given to one stage.
type StageLoss struct {
	Stage  stage.ID `json:"stage"`
	Frames uint64   `json:"frames"`
	// Exact is true when the evidence counts this probe's own frames only
	// (the probe socket's drop counter), false when it is a host or
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
	Source string `json:"source"`
	Object string `json:"object,omitempty"`
	Field  string `json:"field"`
	Delta  uint64 `json:"delta"`
}

// SocketDropsSource names the per-socket drop counter in evidence.
const SocketDropsSource = "SO_MEMINFO / SO_RXQ_OVFL of the probe socket"

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
func Attribute(lost, socketDrops, framesPerDrop uint64, delta *counters.Snapshot, udp bool) Attribution {
	a := Attribution{Lost: lost, Stages: []StageLoss{}}
	left := lost
	type key struct {
		id       stage.ID
		hostWide bool
	}
	byStage := map[stage.ID][]Evidence{}
	maxDelta := map[key]uint64{}
	if delta != nil {
		for _, c := range delta.Counters {
			if c.Stage == "" || c.Gauge || c.Value == 0 {
				continue
			}
			byStage[c.Stage] = append(byStage[c.Stage], Evidence{Source: c.Source, Object: c.Object, Field: c.Field, Delta: c.Value})
			k := key{c.Stage, c.HostWide}
			maxDelta[k] = max(maxDelta[k], c.Value)
		}
	}
	for _, ev := range byStage {
		sort.SliceStable(ev, func(i, j int) bool { return ev[i].Delta > ev[j].Delta })
	}
	// The socket stage first: exact.
	framesPerDrop = max(framesPerDrop, 1)
	if n := min(socketDrops*framesPerDrop, left); n > 0 {
		left -= n
		ev := append([]Evidence{{Source: SocketDropsSource, Field: "sk_drops", Delta: socketDrops}}, byStage[stage.SocketRcvbuf]...)
		a.Stages = append(a.Stages, StageLoss{Stage: stage.SocketRcvbuf, Frames: n, Exact: framesPerDrop == 1, Evidence: ev})
	}
	frames := map[stage.ID]uint64{}
	for _, hostWide := range []bool{false, true} {
		for _, info := range stage.All() {
			id := info.ID
			d := maxDelta[key{id, hostWide}]
			if id == stage.SocketRcvbuf || (udp && tcpOnly[id]) || left == 0 {
				continue
			}
			// A stage's namespace counter and host counter may count the
			// same drops: the host pass only adds what exceeds the first.
			if hostWide {
				d -= min(d, frames[id])
			}
			n := min(d, left)
			left -= n
			frames[id] += n
		}
	}
	for _, info := range stage.All() {
		if n := frames[info.ID]; n > 0 {
			a.Stages = append(a.Stages, StageLoss{Stage: info.ID, Frames: n, Evidence: byStage[info.ID]})
		}
	}
	for i := range a.Stages {
		if ev := a.Stages[i].Evidence; len(ev) > maxEvidence {
			a.Stages[i].MoreEvidence = len(ev) - maxEvidence
			a.Stages[i].Evidence = ev[:maxEvidence]
		}
	}
	a.Unaccounted = left
	return a
}
