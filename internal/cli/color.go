package cli

import (
	"io"
	"os"

	"golang.org/x/term"

	"github.com/netdrop/netdrop/internal/report"
)

// isTerminal reports whether w is a terminal (a tty, not a pipe or file).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// colorOn decides whether output to w is coloured: --color=always or never
// decide; auto colours a terminal unless NO_COLOR is set to anything
// (https://no-color.org) or TERM is dumb.
func (e *env) colorOn(w io.Writer) bool {
	switch e.color {
	case "always":
		return true
	case "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(w)
}

// style is the report style for text written to w.
func (e *env) style(w io.Writer) report.Style { return report.Style{Color: e.colorOn(w)} }

// progress returns where a live progress line (carriage returns, erased
// lines) may go: stderr when it is a terminal, else nil, so that logs and
// redirected output never collect escape codes.
func (e *env) progress() io.Writer {
	if isTerminal(e.stderr) {
		return e.stderr
	}
	return nil
}
