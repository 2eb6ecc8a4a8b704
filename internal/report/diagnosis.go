// Package report renders netdrop's results for people: the packet path with
// drops per stage, findings with evidence and fixes, and what could not be
// read. JSON output does not come through here; commands encode their
// result types directly so the JSON shape is the Go shape.
package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

// Diagnosis writes a diagnosis report as plain text.
func Diagnosis(w io.Writer, r *diagnose.Report) error { return DiagnosisStyled(w, r, Style{}) }

// DiagnosisStyled writes a diagnosis report as text in style st.
func DiagnosisStyled(w io.Writer, r *diagnose.Report, st Style) error {
	var b strings.Builder
	if r.Once {
		fmt.Fprintf(&b, "%s\n\n", st.Title(fmt.Sprintf("netdrop diagnose — %s, totals since boot", nsLabel(r.Netns))))
	} else {
		fmt.Fprintf(&b, "%s\n\n", st.Title(fmt.Sprintf("netdrop diagnose — %s, %.1fs interval", nsLabel(r.Netns), r.IntervalS)))
	}
	drops := map[stage.ID]diagnose.StageDrops{}
	for _, s := range r.Stages {
		drops[s.Stage] = s
	}
	for _, p := range []struct {
		name string
		path stage.Path
	}{{"RX", stage.RX}, {"TX", stage.TX}} {
		fmt.Fprintf(&b, "%s ", p.name)
		for i, id := range stage.OnPath(p.path) {
			if i > 0 {
				b.WriteString(" → ")
			}
			b.WriteString(stageCell(id, drops[id], r.Once, st))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	if len(r.Findings) == 0 {
		b.WriteString("No drops or near-drops found.\n")
	}
	for i, f := range r.Findings {
		sev := strings.ToUpper(f.Severity.String())
		if f.Expected != "" {
			sev += ", EXPECTED"
		}
		fmt.Fprintf(&b, "%d. %s %s — %s\n", i+1, st.Severity(f.Severity, "["+sev+"]"), f.Stage, f.Title)
		if f.Drops > 0 {
			noun := "packets"
			if f.Drops == 1 {
				noun = "packet"
			}
			if r.Once {
				fmt.Fprintf(&b, "   lost %d %s since boot\n", f.Drops, noun)
			} else {
				fmt.Fprintf(&b, "   lost %d %s (%.0f/s)\n", f.Drops, noun, f.Rate)
			}
		}
		if f.HostWide {
			b.WriteString("   (host-wide source)\n")
		}
		for _, n := range f.Notes {
			fmt.Fprintf(&b, "   note: %s\n", n)
		}
		for _, ev := range f.Evidence {
			switch {
			case ev.Value != 0 && ev.Delta == 0:
				fmt.Fprintf(&b, "   evidence: %s = %d  [%s]\n", ev.Name(), ev.Value, ev.Source)
			case ev.Value != 0:
				fmt.Fprintf(&b, "   evidence: %s = %d (+%d)  [%s]\n", ev.Name(), ev.Value, ev.Delta, ev.Source)
			default:
				fmt.Fprintf(&b, "   evidence: %s +%d  [%s]\n", ev.Name(), ev.Delta, ev.Source)
			}
		}
		if f.Cause != "" {
			fmt.Fprintf(&b, "   cause: %s\n", f.Cause)
		}
		fixes(&b, f, r.Netns)
		if f.Advice != "" {
			fmt.Fprintf(&b, "   advice: %s\n", f.Advice)
		}
		if f.NotAutomatic != "" {
			fmt.Fprintf(&b, "   not automatic: %s\n", f.NotAutomatic)
		}
		b.WriteString("\n")
	}
	if len(r.Unexplained) > 0 {
		b.WriteString("Drops no stage explains (from skb:kfree_skb):\n")
		for _, u := range r.Unexplained {
			fmt.Fprintf(&b, "  - %d × %s\n", u.Drops, u.Where)
		}
		b.WriteString("\n")
	}
	if len(r.Unavailable) > 0 {
		b.WriteString("Not read:\n")
		for _, u := range r.Unavailable {
			fmt.Fprintf(&b, "  - %s: %s\n", u.Where(), u.Reason)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func nsLabel(ns string) string {
	if counters.IsCurrentNetns(ns) {
		return "this host"
	}
	return "netns " + ns
}

// stageCell shows a stage with its rate, or quietly with a dot when nothing
// was lost there.
func stageCell(id stage.ID, d diagnose.StageDrops, once bool, st Style) string {
	if d.Drops == 0 {
		return string(id) + " ·"
	}
	if once {
		return st.Drops(fmt.Sprintf("%s [%d]", id, d.Drops))
	}
	return st.Drops(fmt.Sprintf("%s [%.0f/s]", id, d.Rate))
}
