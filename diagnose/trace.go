package diagnose

import (
	"fmt"

	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// traceSource labels evidence from the skb:kfree_skb tracepoint.
const traceSource = "skb:kfree_skb"

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
	hints := droptrace.Hints{ConntrackDrops: sum(in.moved(from(conntrackStat, "drop"))) + sum(in.moved(from(conntrackStat, "early_drop")))}
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
			ev = append(ev, Evidence{Source: traceSource, Counter: r.Evidence(), Delta: r.Count})
		}
		if i := firstAt(fs, g.Stage); i >= 0 {
			fs[i].Evidence = append(fs[i].Evidence, ev...)
			continue
		}
		top := g.Rows[0]
		info, _ := stage.Lookup(g.Stage)
		sev := in.lossSeverity(g.Drops)
		if (g.Stage == stage.TCP || g.Stage == stage.Netfilter) && sev > Warning {
			// As with their counters: TCP recovers what it discards,
			// and firewall drops are often policy.
			sev = Warning
		}
		fs = append(fs, Finding{
			Stage:    g.Stage,
			Severity: sev,
			Title:    fmt.Sprintf("%d packets dropped with reason %s at %s", g.Drops, top.Reason, top.Function),
			Drops:    g.Drops,
			Evidence: ev,
			Cause:    fmt.Sprintf("the kernel dropped packets at the %s (reason %s in %s) and no counter of that stage moved", info.Title, top.Reason, top.Function),
			Fix:      []string{fmt.Sprintf("netdrop trace --reason %s --flows --stacks   # which flows, and the call path", top.Reason)},
		})
	}
	return fs, unexplained
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
