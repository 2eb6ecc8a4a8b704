package report

import "github.com/netdrop/netdrop/diagnose"

// Style says how the text renderers emphasise what matters. The zero Style
// is plain text; the command decides (a terminal, NO_COLOR, --color) and
// passes it in, so renderers never look at the terminal themselves.
type Style struct {
	// Color adds ANSI SGR colour: severities, stages that dropped, titles.
	Color bool
}

// SGR sequences (ECMA-48). Only the eight basic colours and bold, which
// every terminal and the NO_COLOR convention know.
const (
	sgrReset  = "\x1b[0m"
	sgrBold   = "\x1b[1m"
	sgrRed    = "\x1b[1;31m"
	sgrYellow = "\x1b[33m"
	sgrCyan   = "\x1b[36m"
	sgrGreen  = "\x1b[32m"
)

func (s Style) wrap(sgr, text string) string {
	if !s.Color || text == "" {
		return text
	}
	return sgr + text + sgrReset
}

// Title emphasises a heading.
func (s Style) Title(text string) string { return s.wrap(sgrBold, text) }

// Drops marks a place where packets were lost.
func (s Style) Drops(text string) string { return s.wrap(sgrRed, text) }

// Severity colours text by sev: critical red, warning yellow, info cyan.
func (s Style) Severity(sev diagnose.Severity, text string) string {
	switch sev {
	case diagnose.Critical:
		return s.wrap(sgrRed, text)
	case diagnose.Warning:
		return s.wrap(sgrYellow, text)
	default:
		return s.wrap(sgrCyan, text)
	}
}

// Verdict colours a check's outcome: green when it passed, red when not.
func (s Style) Verdict(pass bool, text string) string {
	if pass {
		return s.wrap(sgrGreen, text)
	}
	return s.wrap(sgrRed, text)
}
