package diagnose

import (
	"fmt"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// maxTraceRows bounds the function-level evidence added to one finding.
const maxTraceRows = 5

// Unexplained is a drop the tracer saw whose reason and location name no
// stage of the path (a driver's own reason, a tunnel, a policy hook).
type Unexplained struct {
	Reason   string `json:"reason"`
	Location string `json:"location"`
	Drops    uint64 `json:"drops"`
	Where    string `json:"where"`
}

// ruleTrace folds the tracer's drops of the interval into the findings:
// function-level evidence for the stage's finding when counters already
// found it, a finding of its own through its reason when no counter did,
// and a list of drops no stage explains.
func ruleTrace(in *input, fs []Finding) ([]Finding, []Unexplained) {
	if in.trace == nil {
		return fs, nil
	}
	hints := droptrace.Hints{ConntrackDrops: sum(in.moved(from(counters.ProcNetStatConntrack, "drop"))) + sum(in.moved(from(counters.ProcNetStatConntrack, "early_drop")))}
	var unexplained []Unexplained
	for _, g := range droptrace.ByStage(*in.trace, hints) {
		if g.Stage == "" {
			for _, r := range g.Rows {
				unexplained = append(unexplained, Unexplained{Reason: r.Reason, Location: r.Location, Drops: r.Count, Where: r.Evidence()})
			}
			continue
		}
		var ev []Evidence
		for i, r := range g.Rows {
			if i == maxTraceRows {
				break
			}
			ev = append(ev, Evidence{Source: SourceTracer, Object: r.Place(), Field: r.ReasonName(), Delta: r.Count})
		}
		if i := bestAt(fs, g.Stage); i >= 0 {
			fs[i].Evidence = append(fs[i].Evidence, ev...)
			in.weigh(&fs[i], g)
			continue
		}
		top := g.Rows[0]
		info, _ := stage.Lookup(g.Stage)
		var notes []string
		if specified(g) == 0 {
			notes = append(notes, unspecifiedNote)
		}
		fs = append(fs, Finding{
			Notes:    notes,
			Stage:    g.Stage,
			Severity: tracedSeverity(in, g.Stage, specified(g)),
			Title:    fmt.Sprintf("%d packets dropped with reason %s at %s", g.Drops, top.Reason, top.Function),
			Drops:    g.Drops,
			Evidence: ev,
			Cause:    fmt.Sprintf("the kernel dropped packets at the %s (reason %s in %s) and no counter of that stage moved", info.Title, top.Reason, top.Function),
			Fix:      []Fix{inspect(shellJoin("netdrop", "trace", "--reason", top.Reason, "--flows", "--stacks"), "which flows, and the call path")},
		})
	}
	return fs, unexplained
}

// unspecifiedNote says why frees without a reason do not grade a finding.
const unspecifiedNote = "the kernel gave no drop reason (NOT_SPECIFIED): such frees are not always loss; at tcp_v4_rcv they include segments a TIME_WAIT socket absorbed; netdrop trace --stacks shows the call path"

// specified counts the drops of g the kernel gave a reason for. Frees
// without one (NOT_SPECIFIED) are not always loss: tcp_v4_rcv frees every
// segment a TIME_WAIT socket absorbs (a duplicate ACK, the peer's last FIN
// retransmitted) through the same path as a discard, with no reason, and
// their number varies with timing. Graded as loss, they made a TCP finding
// of 10 to 32 such frees critical in the lab's time-wait-ports scenario now
// and then, above the ports finding that was the point (the run_all
// ranking flake). They stay as evidence and drops, graded as information.
func specified(g droptrace.StageDrops) uint64 {
	var n uint64
	for _, r := range g.Rows {
		if r.Reason != "" && r.Reason != "NOT_SPECIFIED" {
			n += r.Count
		}
	}
	return n
}

// tracedSeverity grades drops the tracer counted at stage s. As with their
// counters, TCP and firewall drops are warnings at most: TCP recovers what
// it discards, and firewall drops are often policy.
func tracedSeverity(in *input, s stage.ID, drops uint64) Severity {
	sev := in.lossSeverity(drops)
	if s == stage.TCP || s == stage.Netfilter {
		sev = atMost(sev, Warning)
	}
	return sev
}

// bestAt returns the index of the finding at stage s with the most drops
// (the first of those), or -1: the tracer's count of the stage is compared
// with it.
func bestAt(fs []Finding, s stage.ID) int {
	best := -1
	for i, f := range fs {
		if f.Stage == s && (best < 0 || f.Drops > fs[best].Drops) {
			best = i
		}
	}
	return best
}

// weigh sets a finding's drops from the best evidence for its stage: the
// tracer counts every packet freed there, exactly, while some stages'
// counters count something else (neighbour resolutions, requeues) or
// nothing at all. When the finding's counters count no packets, the
// tracer's count becomes its drops; when both count packets and differ by
// more than the disagreement threshold, the finding says so and keeps the
// counters' figure, since they cover what the tracer may not (other
// namespaces for host-wide counters, drops before it attached).
func (in *input) weigh(f *Finding, g droptrace.StageDrops) {
	t := g.Drops
	switch {
	case f.Drops == 0:
		f.Drops = t
		f.Title = fmt.Sprintf("%d packets dropped: %s", t, f.Title)
		f.Severity = max(f.Severity, tracedSeverity(in, f.Stage, specified(g)))
		f.Notes = append(f.Notes, fmt.Sprintf("%d packets dropped, counted exactly by the drop tracer (%s); the stage's counters count events, not packets", t, g.Rows[0].Reason))
	case differ(f.Drops, t):
		why := ""
		if f.HostWide {
			why = ": the counters are host-wide, the tracer saw this namespace only"
		}
		f.Notes = append(f.Notes, fmt.Sprintf("counters and drop tracer disagree: counters %d, tracer %d (%+.0f%%)%s", f.Drops, t, 100*(float64(t)-float64(f.Drops))/float64(f.Drops), why))
	}
}

// differ reports whether two counts of the same packets differ by more than
// the disagreement threshold of the larger.
func differ(a, b uint64) bool {
	hi, lo := max(a, b), min(a, b)
	return float64(hi-lo) > disagreement*float64(hi)
}

// firstAt returns the index of the first finding at stage s, or -1.
func firstAt(fs []Finding, s stage.ID) int {
	for i, f := range fs {
		if f.Stage == s {
			return i
		}
	}
	return -1
}
