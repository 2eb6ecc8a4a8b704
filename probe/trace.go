package probe

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// Tracer is a started drop tracer: a *droptrace.Tracer, or a fake in tests.
// The probe reads it at the start and the end of a run and keeps the drops
// of the run's own flow (its 5-tuple) that happened in between, so its
// counts are exact whatever else the host carries.
type Tracer interface {
	Snapshot() (droptrace.Snapshot, error)
}

// TraceOptions are the tracer options that cover a UDP probe's flow on one
// host: drops in the namespace netns (as droptrace.Options.Netns takes it)
// of UDP datagrams to or from port, with 5-tuples, so that the probe can
// keep its own flow's drops and leave any other flow's on that port out.
// The kernel filters on the port, so a busy host's other drops cost the
// tracer a few loads each, not a map update.
func TraceOptions(netns string, port uint16) droptrace.Options {
	return droptrace.Options{Netns: netns, Proto: "udp", Port: port, Flows: true}
}

// TraceSource names drops the tracer counted for the probe's own flow in
// evidence: Object is where (function, namespace, interface), Field the
// kernel's drop reason.
const TraceSource counters.SourceID = "kfree_skb tracepoint (eBPF), the probe's own flow"

// TraceAllSource names drops a hop's tracer counted without 5-tuples: every
// flow of that namespace, so only an upper bound for the probe's.
const TraceAllSource counters.SourceID = "kfree_skb tracepoint (eBPF), every flow of the hop"

// FlowKey is the 5-tuple of a UDP probe's data frames, sender to receiver.
// An unspecified (or invalid) address matches any address with that port:
// a receiver listening on a wildcard address does not know which of its
// addresses the sender dialled.
type FlowKey struct {
	Src netip.AddrPort `json:"src"`
	Dst netip.AddrPort `json:"dst"`
}

// FlowOf is the data frames' key of a probe from local to remote.
func FlowOf(local, remote net.Addr) FlowKey {
	return FlowKey{Src: addrPort(local), Dst: addrPort(remote)}
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func (k FlowKey) String() string { return "udp " + k.Src.String() + " > " + k.Dst.String() }

// Matches reports whether a traced flow is the probe's data direction.
func (k FlowKey) Matches(f droptrace.Flow) bool {
	if f.Proto != "udp" {
		return false
	}
	return endMatches(k.Src, f.Src) && endMatches(k.Dst, f.Dst)
}

func endMatches(want netip.AddrPort, got string) bool {
	ap, err := netip.ParseAddrPort(got)
	if err != nil || ap.Port() != want.Port() {
		return false
	}
	w := want.Addr()
	return !w.IsValid() || w.IsUnspecified() || ap.Addr().Unmap() == w.Unmap()
}

// FlowOnly keeps the rows of d (a tracer delta) that hold the probe's flow,
// each with the count of that flow alone. Noise is left out.
func FlowOnly(d droptrace.Snapshot, k FlowKey) droptrace.Snapshot {
	out := droptrace.Snapshot{Time: d.Time}
	for _, r := range d.Rows {
		var n uint64
		var fl []droptrace.Flow
		for _, f := range r.Flows {
			if k.Matches(f) {
				n += f.Count
				fl = append(fl, f)
			}
		}
		if n > 0 {
			r.Count, r.Flows = n, fl
			out.Rows = append(out.Rows, r)
		}
	}
	return out
}

// traceWindow is one tracer read at the start of a run.
type traceWindow struct {
	t      Tracer
	before droptrace.Snapshot
	err    error
}

func openWindow(t Tracer) *traceWindow {
	if t == nil {
		return nil
	}
	w := &traceWindow{t: t}
	w.before, w.err = t.Snapshot()
	return w
}

// close reads the tracer again and returns what it counted in between.
func (w *traceWindow) close() (droptrace.Snapshot, error) {
	if w.err != nil {
		return droptrace.Snapshot{}, w.err
	}
	after, err := w.t.Snapshot()
	if err != nil {
		return droptrace.Snapshot{}, err
	}
	return droptrace.Delta(w.before, after), nil
}

// traced is what one host's tracer saw of the run, by stage.
type traced struct {
	stages []droptrace.StageDrops
	// flow is false when the rows are every flow of the namespace (a hop
	// whose tracer keeps no 5-tuples): an upper bound, not exact.
	flow bool
}

func tracedOf(d droptrace.Snapshot, k FlowKey, flow bool) traced {
	if flow {
		d = FlowOnly(d, k)
	}
	return traced{stages: droptrace.ByStage(d, droptrace.Hints{}), flow: flow}
}

// uncontrol takes up to *control drops off the traced stages, the
// socket's first: copies of control frames (Hello, Fin) the sender
// resent travel the same 5-tuple, so the tracer counts them too, but they
// are not data frames. The receiver learns how many never arrived from the
// attempt numbers; where they were lost no one knows, so the subtraction is
// greedy and can only move frames to unaccounted, never blame a stage for
// more than it dropped.
func (t *traced) uncontrol(control *uint64) {
	order := make([]int, 0, len(t.stages))
	for i, s := range t.stages {
		if s.Stage == stage.SocketRcvbuf {
			order = append(order, i)
		}
	}
	for i, s := range t.stages {
		if s.Stage != stage.SocketRcvbuf {
			order = append(order, i)
		}
	}
	for _, i := range order {
		n := min(*control, t.stages[i].Drops)
		t.stages[i].Drops -= n
		*control -= n
	}
}

// loss turns traced stages into the frames they explain of *left.
func (t traced) loss(left *uint64, side, hop string, skip stage.ID) []StageLoss {
	var out []StageLoss
	for _, s := range t.stages {
		if s.Stage == skip || *left == 0 || s.Drops == 0 {
			continue
		}
		n := min(s.Drops, *left)
		*left -= n
		out = append(out, capEvidence(StageLoss{Stage: s.Stage, Side: side, Hop: hop, Frames: n, Exact: t.flow, Evidence: traceEvidence(s, t.flow)}))
	}
	return out
}

func traceEvidence(s droptrace.StageDrops, flow bool) []Evidence {
	src := TraceSource
	if !flow {
		src = TraceAllSource
	}
	var ev []Evidence
	for _, r := range s.Rows {
		ev = append(ev, Evidence{Source: src, Object: r.Place(), Field: r.ReasonName(), Delta: r.Count})
	}
	return ev
}

// untraceable are the stages whose drops never reach kfree_skb as a
// packet: the NIC and its ring drop before there is an skb, and XDP_DROP
// recycles the page. With a tracer, counters still explain these.
var untraceable = []stage.ID{stage.NIC, stage.RxRing, stage.XDP}

// Place is one place on the path the probe's frames take, and how netdrop
// watched it during the run.
type Place struct {
	// Side is "sender", "receiver" or "hop".
	Side string `json:"side"`
	// Hop names the hop (the URL of its exporter).
	Hop string `json:"hop,omitempty"`
	// Traced is true when the drop tracer counted drops there; Flow when
	// it counted the probe's own 5-tuple (exact) rather than every flow of
	// the namespace.
	Traced bool `json:"traced"`
	Flow   bool `json:"flow,omitempty"`
	// Note says why it was not traced, or what else limits the evidence.
	Note string `json:"note,omitempty"`
}

// HostID tells two ends apart: the kernel's boot id and the network
// namespace's inode. Two ends with the same HostID read the same
// counters and trace the same drops, so only one of them may count them.
type HostID struct {
	Boot  string `json:"boot_id"`
	Netns uint32 `json:"netns"`
}

// HostOf identifies the namespace netns (as droptrace.Options.Netns takes
// it) on this host; nil when either part cannot be read.
func HostOf(netns string) *HostID {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil
	}
	ino, err := droptrace.NetnsInode(netns)
	if err != nil {
		return nil
	}
	return &HostID{Boot: string(bytes.TrimSpace(b)), Netns: ino}
}

// sameNamespace reports whether a and b are known and equal.
func sameNamespace(a, b *HostID) bool {
	return a != nil && b != nil && a.Boot != "" && *a == *b
}

// traceNote is the note of a place whose tracer could not be read.
func traceNote(err error) string {
	return fmt.Sprintf("not traced (%s): counters only, which other traffic also moves", strings.TrimSpace(err.Error()))
}
