package probe

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// ReportVersion is the version of the report a server of this netdrop
// sends. Version 2 added the traced drops of the probe's own flow, Places
// and Host; a report without a version is version 1 and still read (its
// receiver's share came from counters). Fields are only ever added, so a
// client reads a newer report too and says what it cannot show.
const ReportVersion = 2

// AttributeTraced is Attribute for a receiver whose drop tracer watched the
// run (tr is the tracer's delta over the run): every frame of the probe's
// flow k that the kernel freed on this host is counted at its stage and
// reason, exactly. The probe socket's own drop counter and the tracer count
// the same socket drops; the larger is kept. Counters then explain only the
// stages the tracer cannot see (the NIC, its ring, XDP). control is how
// many control frame copies the sender resent during the run (the Fins that
// never arrived), taken off the traced counts first.
func AttributeTraced(lost, socketDrops, framesPerDrop, control uint64, tr droptrace.Snapshot, k FlowKey, delta *counters.Snapshot, t Traffic) Attribution {
	a := Attribution{Lost: lost, Stages: []StageLoss{}}
	left := lost
	tc := tracedOf(tr, k, true)
	tc.uncontrol(&control)
	ev := evidence(delta, t)
	framesPerDrop = max(framesPerDrop, 1)
	var sock droptrace.StageDrops
	for _, s := range tc.stages {
		if s.Stage == stage.SocketRcvbuf {
			sock = s
		}
	}
	if n := min(max(socketDrops*framesPerDrop, sock.Drops), left); n > 0 {
		left -= n
		var e []Evidence
		if socketDrops > 0 {
			e = append(e, Evidence{Source: SocketDropsSource, Field: "sk_drops", Delta: socketDrops})
		}
		e = append(e, traceEvidence(sock, true)...)
		e = append(e, ev.byStage[stage.SocketRcvbuf]...)
		a.Stages = append(a.Stages, capEvidence(StageLoss{Stage: stage.SocketRcvbuf, Frames: n, Exact: framesPerDrop == 1, Evidence: e}))
	}
	for _, s := range tc.loss(&left, "", "", stage.SocketRcvbuf) {
		// With UDP_GRO one freed buffer may be many frames.
		s.Exact = s.Exact && framesPerDrop == 1
		a.Stages = append(a.Stages, s)
	}
	a.Stages = append(a.Stages, ev.spread(&left, untraceable, "", "")...)
	a.Unaccounted = left
	return a
}

// HopReading is what the netdrop exporter of a host in between says at one
// moment: its counters and, when it runs the tracer, its drop rows. The
// client reads each hop before the run and after, and attributes what
// neither end explains to the hop whose drops moved.
type HopReading struct {
	// Version is the reading's format (1).
	Version int       `json:"version"`
	Time    time.Time `json:"time"`
	// Netns is the namespace the exporter watches.
	Netns    string             `json:"netns,omitempty"`
	Counters *counters.Snapshot `json:"counters,omitempty"`
	// Trace holds the tracer's rows (noise left out) since the exporter
	// started. With TraceFlows each row's Flows are the probe's flow only
	// (the exporter keeps the flow asked for), so a row's own drops of
	// that flow are the sum of its flows' counts.
	Trace      []droptrace.Row `json:"trace,omitempty"`
	Traced     bool            `json:"traced"`
	TraceFlows bool            `json:"trace_flows,omitempty"`
	// TraceNote says why there are no traced rows (no --trace, no BPF).
	TraceNote string `json:"trace_note,omitempty"`
}

// HopReadingVersion is the version of HopReading this netdrop writes.
const HopReadingVersion = 1

// HopPath is where a netdrop exporter serves HopReading as JSON; the
// query's flow parameter (FlowKey.Query) names the probe's flow.
const HopPath = "/probe/drops"

// Query is the flow as HopPath's query takes it: "udp,SRC,DST".
func (k FlowKey) Query() string { return "udp," + k.Src.String() + "," + k.Dst.String() }

// ParseFlowQuery reads FlowKey.Query.
func ParseFlowQuery(s string) (FlowKey, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 || parts[0] != "udp" {
		return FlowKey{}, fmt.Errorf("flow %q: want udp,SRC_IP:PORT,DST_IP:PORT", s)
	}
	src, err := netip.ParseAddrPort(parts[1])
	if err != nil {
		return FlowKey{}, fmt.Errorf("flow %q: %w", s, err)
	}
	dst, err := netip.ParseAddrPort(parts[2])
	if err != nil {
		return FlowKey{}, fmt.Errorf("flow %q: %w", s, err)
	}
	return FlowKey{Src: src, Dst: dst}, nil
}

// Hop is a host in between that can be read: the exporter at a URL
// (exporter.HopClient), or a fake in tests.
type Hop interface {
	Name() string
	Read(ctx context.Context, k FlowKey) (HopReading, error)
}

// hopWindow is one hop read before the run.
type hopWindow struct {
	hop    Hop
	before HopReading
	err    error
}

// rowID identifies a traced row across two JSON readings (a Row's map key
// does not travel).
type rowID struct {
	reason, location, protocol, l4 string
	netns, ifindex                 uint32
}

func idOf(r droptrace.Row) rowID {
	return rowID{r.Reason, r.Location, r.Protocol, r.L4, r.Netns, r.Ifindex}
}

// hopDelta is what a hop's tracer counted between two readings, as a
// snapshot: with flows, each row's count is its flows' (the probe's).
func hopDelta(before, after []droptrace.Row, flows bool) droptrace.Snapshot {
	count := func(r droptrace.Row) uint64 {
		if !flows {
			return r.Count
		}
		var n uint64
		for _, f := range r.Flows {
			n += f.Count
		}
		return n
	}
	old := map[rowID]uint64{}
	for _, r := range before {
		old[idOf(r)] += count(r)
	}
	var d droptrace.Snapshot
	for _, r := range after {
		n, o := count(r), old[idOf(r)]
		if n <= o {
			continue
		}
		old[idOf(r)] = n // a row listed twice counts once
		r.Count, r.Flows = n-o, nil
		d.Rows = append(d.Rows, r)
	}
	sort.SliceStable(d.Rows, func(i, j int) bool { return d.Rows[i].Count > d.Rows[j].Count })
	return d
}

// attributeHop gives what is still unaccounted to the stages of one hop:
// first the drops its tracer counted for the probe's flow (exact), or for
// every flow of its namespace when it keeps no 5-tuples (an upper bound),
// then the stages its counters show, all of them without a tracer, only
// the untraceable ones with.
func attributeHop(a *Attribution, name string, before, after HopReading, t Traffic, control *uint64) Place {
	p := Place{Side: "hop", Hop: name}
	left := a.Unaccounted
	var delta *counters.Snapshot
	if before.Counters != nil && after.Counters != nil {
		delta = counters.Delta(before.Counters, after.Counters)
	}
	ev := evidence(delta, t)
	ids := untraceable
	if before.Traced && after.Traced {
		p.Traced, p.Flow = true, before.TraceFlows && after.TraceFlows
		tc := traced{stages: droptrace.ByStage(hopDelta(before.Trace, after.Trace, p.Flow), droptrace.Hints{}), flow: p.Flow}
		if p.Flow {
			tc.uncontrol(control)
		} else {
			p.Note = "traced without 5-tuples (start its exporter with --trace-flows): drops of every flow there, an upper bound"
		}
		a.Stages = append(a.Stages, tc.loss(&left, "hop", name, "")...)
	} else {
		p.Note = cmpOr(after.TraceNote, before.TraceNote, "not traced")
		ids = nil
		for _, id := range append(stage.OnPath(stage.RX), txOrder...) {
			if !(t.UDP && tcpOnly[id]) {
				ids = append(ids, id)
			}
		}
	}
	a.Stages = append(a.Stages, ev.spread(&left, ids, "hop", name)...)
	a.Unaccounted = left
	return p
}

func cmpOr(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// clientWindow is what the client read before the run, to attribute what
// the receiver could not explain: the sender's counters and tracer, and
// the hops in between.
type clientWindow struct {
	counters *counters.Snapshot
	trace    *traceWindow
	hops     []hopWindow
}

func openClientWindow(ctx context.Context, cfg ClientConfig, k FlowKey) clientWindow {
	var w clientWindow
	if cfg.Collect != nil {
		w.counters = cfg.Collect(ctx)
	}
	w.trace = openWindow(cfg.Tracer)
	for _, h := range cfg.Via {
		r, err := h.Read(ctx, k)
		w.hops = append(w.hops, hopWindow{hop: h, before: r, err: err})
	}
	return w
}

// attributeRest adds the sender's share and then the hops' to what the
// receiver left unaccounted, and says how each place was watched.
func (w clientWindow) attributeRest(ctx context.Context, rep *Report, cfg ClientConfig, k FlowKey, t Traffic) {
	a := &rep.Attribution
	if rep.Version < 2 && len(a.Places) == 0 {
		a.Places = append(a.Places, Place{Side: "receiver", Note: "the server is an older netdrop (report version 1): its share is from its counters, not traced"})
	}
	if rep.Version > ReportVersion {
		a.Places = append(a.Places, Place{Side: "receiver", Note: fmt.Sprintf("the server writes report version %d, newer than this client's %d: what it added is not shown", rep.Version, ReportVersion)})
	}
	control := rep.HelloMissed + rep.FinMissed
	sender := Place{Side: "sender"}
	switch {
	case sameNamespace(cfg.Host, rep.Host):
		sender.Note = "the same namespace as the receiver: its drops are in the receiver's share"
	case w.trace != nil:
		d, err := w.trace.close()
		if err != nil {
			sender.Note = traceNote(err)
			w.senderCounters(ctx, a, cfg, t)
			break
		}
		sender.Traced, sender.Flow = true, true
		tc := tracedOf(d, k, true)
		tc.uncontrol(&control)
		left := a.Unaccounted
		a.Stages = append(a.Stages, tc.loss(&left, "sender", "", "")...)
		a.Unaccounted = left
	default:
		sender.Note = cmpOr(cfg.TraceUnavailable, "not traced: counters only, which other traffic also moves")
		if cfg.Collect == nil {
			sender.Note = "not watched (no counters read on the sender)"
		}
		w.senderCounters(ctx, a, cfg, t)
	}
	a.Places = append(a.Places, sender)
	for _, h := range w.hops {
		if h.err != nil {
			a.Places = append(a.Places, Place{Side: "hop", Hop: h.hop.Name(), Note: "no reading before the run: " + h.err.Error()})
			continue
		}
		after, err := h.hop.Read(ctx, k)
		if err != nil {
			a.Places = append(a.Places, Place{Side: "hop", Hop: h.hop.Name(), Note: "no reading after the run: " + err.Error()})
			continue
		}
		a.Places = append(a.Places, attributeHop(a, h.hop.Name(), h.before, after, t, &control))
	}
}

func (w clientWindow) senderCounters(ctx context.Context, a *Attribution, cfg ClientConfig, t Traffic) {
	if cfg.Collect == nil || w.counters == nil {
		return
	}
	*a = AttributeSender(*a, counters.Delta(w.counters, cfg.Collect(ctx)), t)
}

// Split sums the attribution by place: frames lost on the sender, on the
// receiver, at the hops in between, and on none of them.
func (a Attribution) Split() (sender, receiver, hops, unaccounted uint64) {
	for _, s := range a.Stages {
		switch s.Side {
		case "sender":
			sender += s.Frames
		case "hop":
			hops += s.Frames
		default:
			receiver += s.Frames
		}
	}
	return sender, receiver, hops, a.Unaccounted
}
