package report

import (
	"fmt"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
)

// CommandLine renders a command fix as one line a shell runs as pasted:
// the command, then the value now and the note as a comment
// ("sysctl -w net.core.rmem_max=26214400  # now 4194304; the ceiling for
// SO_RCVBUF"). It returns "" for fixes that are not commands.
func CommandLine(f diagnose.Fix) string {
	if f.Command == "" {
		return ""
	}
	var c []string
	if f.Now != "" {
		c = append(c, "now "+f.Now)
	}
	if f.Note != "" {
		c = append(c, f.Note)
	}
	if len(c) == 0 {
		return f.Command
	}
	return f.Command + "  # " + oneLine(strings.Join(c, "; "))
}

// AppLine renders an application fix for people: what to set on which
// socket, the value now and the note. It is not a command.
func AppLine(f diagnose.Fix) string {
	s := f.Text
	if s == "" && f.App != nil {
		s = f.App.String()
	}
	if f.Now != "" {
		s += " (now " + f.Now + ")"
	}
	if f.Note != "" {
		s += ": " + f.Note
	}
	return s
}

// AdviceLine renders an advice fix, with the value now when it names one.
func AdviceLine(f diagnose.Fix) string {
	if f.Now != "" {
		return f.Text + " (now " + f.Now + ")"
	}
	return f.Text
}

// oneLine keeps a comment on its line: a newline in a note would end the
// comment and make the rest a command.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// fixes writes a finding's fixes grouped by who acts: the settings (which
// netdrop tune applies), the commands netdrop leaves to a person with why,
// the application changes, the read-only checks, then advice. Command lines
// stand alone, indented, so a block can be pasted into a shell as it is.
func fixes(b *strings.Builder, f diagnose.Finding, ns string) {
	by := map[diagnose.FixKind][]diagnose.Fix{}
	for _, x := range f.Fix {
		by[x.Kind] = append(by[x.Kind], x)
	}
	where := ""
	switch {
	case counters.IsCurrentNetns(ns):
	case f.HostWide:
		// Host-wide evidence: the settings that answer it are the host's.
		where = ", on the host"
	default:
		where = ", inside netns " + ns
	}
	if xs := by[diagnose.FixSetting]; len(xs) > 0 {
		fmt.Fprintf(b, "   fix (as root%s; netdrop tune can apply these):\n", where)
		for _, x := range xs {
			fmt.Fprintf(b, "     %s\n", CommandLine(x))
		}
	}
	if xs := by[diagnose.FixManual]; len(xs) > 0 {
		fmt.Fprintf(b, "   by hand (as root%s; netdrop does not run these):\n", where)
		for _, x := range xs {
			if x.NotAutomatic != "" {
				fmt.Fprintf(b, "     # %s\n", oneLine(x.NotAutomatic))
			}
			fmt.Fprintf(b, "     %s\n", CommandLine(x))
		}
	}
	if xs := by[diagnose.FixApp]; len(xs) > 0 {
		b.WriteString("   in the application:\n")
		for _, x := range xs {
			fmt.Fprintf(b, "     - %s\n", AppLine(x))
		}
	}
	if xs := by[diagnose.FixInspect]; len(xs) > 0 {
		fmt.Fprintf(b, "   check%s:\n", where)
		for _, x := range xs {
			fmt.Fprintf(b, "     %s\n", CommandLine(x))
		}
	}
	for _, x := range by[diagnose.FixAdvice] {
		fmt.Fprintf(b, "   advice: %s\n", AdviceLine(x))
	}
}

// Commands lists every command line the text report of r prints, as
// printed (CommandLine): what a user may paste, and what tests pass
// through the shell.
func Commands(r *diagnose.Report) []string {
	var out []string
	for _, f := range r.Findings {
		for _, x := range f.Fix {
			if l := CommandLine(x); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}
