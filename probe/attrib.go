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
}

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

// Attribute gives each lost frame to at most one stage, walking the path in
// packet order. The probe socket's own drop counter comes first and is exact:
// the kernel counted those drops on this socket and no other. Each other
// stage gets at most the largest of its counters' deltas (counters of one
// stage often nest, Udp:InErrors includes Udp:RcvbufErrors, so summing them
// would count a drop twice) and never more than is still unexplained, since a
// host counter also counts other traffic. What is left is unaccounted.
//
// delta may be nil (no counters could be read); then only the socket's own
// drops are attributed.
func Attribute(lost, socketDrops uint64, delta *counters.Snapshot, udp bool) Attribution {
	a := Attribution{Lost: lost}
	left := lost
	byStage := map[stage.ID][]Evidence{}
	maxDelta := map[stage.ID]uint64{}
	if delta != nil {
		for _, c := range delta.Counters {
			if c.Stage == "" || c.Gauge || c.Value == 0 {
				continue
			}
			byStage[c.Stage] = append(byStage[c.Stage], Evidence{Source: c.Source, Object: c.Object, Field: c.Field, Delta: c.Value})
			maxDelta[c.Stage] = max(maxDelta[c.Stage], c.Value)
		}
	}
	for _, ev := range byStage {
		sort.Slice(ev, func(i, j int) bool { return ev[i].Delta > ev[j].Delta })
	}
	// The socket stage first: exact.
	if socketDrops > 0 || len(byStage[stage.SocketRcvbuf]) > 0 {
		n := min(socketDrops, left)
		left -= n
		ev := append([]Evidence{{Source: SocketDropsSource, Field: "sk_drops", Delta: socketDrops}}, byStage[stage.SocketRcvbuf]...)
		if n > 0 {
			a.Stages = append(a.Stages, StageLoss{Stage: stage.SocketRcvbuf, Frames: n, Exact: true, Evidence: ev})
		}
	}
	for _, info := range stage.All() {
		id := info.ID
		if id == stage.SocketRcvbuf || (udp && tcpOnly[id]) || maxDelta[id] == 0 || left == 0 {
			continue
		}
		n := min(maxDelta[id], left)
		left -= n
		a.Stages = append(a.Stages, StageLoss{Stage: id, Frames: n, Evidence: byStage[id]})
	}
	a.Unaccounted = left
	return a
}
