package top

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/netdrop/netdrop/stage"
)

// Styles. Severity colours follow the text report's: red is loss now,
// yellow a warning, cyan information; quiet stages are dim. The renderer
// lowers or drops colours to what the terminal (or NO_COLOR) allows.
var (
	styleTitle    = lipgloss.NewStyle().Bold(true)
	styleHead     = lipgloss.NewStyle().Bold(true).Underline(true)
	styleDim      = lipgloss.NewStyle().Foreground(lipgloss.BrightBlack)
	styleSelected = lipgloss.NewStyle().Reverse(true)
	stylePaused   = lipgloss.NewStyle().Bold(true).Reverse(true).Foreground(lipgloss.Yellow)
	styleErr      = lipgloss.NewStyle().Foreground(lipgloss.Red)
	styleSev      = map[int8]lipgloss.Style{
		-1:                      lipgloss.NewStyle().Foreground(lipgloss.Cyan),
		int8(diagnose.Info):     lipgloss.NewStyle().Foreground(lipgloss.Cyan),
		int8(diagnose.Warning):  lipgloss.NewStyle().Foreground(lipgloss.Yellow).Bold(true),
		int8(diagnose.Critical): lipgloss.NewStyle().Foreground(lipgloss.Red).Bold(true),
	}
)

// sevStyle colours a stage's numbers: by severity when it drops or has a
// finding, dim when it is quiet.
func sevStyle(sev int8, rate float64) lipgloss.Style {
	if rate == 0 && sev < 0 {
		return styleDim
	}
	return styleSev[sev]
}

// View draws the model on the alternate screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "netdrop top"
	return v
}

// Render is the screen as styled text, at most the terminal's height in
// lines, each at most its width.
func (m *Model) Render() string {
	w, h := max(m.width, 20), max(m.height, 5)
	var lines []string
	lines = append(lines, m.header(w)...)
	footer := styleDim.Render(" ↑↓ select · enter focus · n next dropping · p pause · +/- interval · ? help · q quit")
	body := h - len(lines) - 1
	switch {
	case m.help:
		lines = append(lines, m.helpLines()...)
	default:
		stages := m.stageLines(w, body)
		lines = append(lines, stages...)
		if m.focus {
			lines = append(lines, m.focusLines(w)...)
		} else {
			lines = append(lines, m.panelLines(w)...)
		}
	}
	if len(lines) > h-1 {
		lines = lines[:h-1]
	}
	for len(lines) < h-1 {
		lines = append(lines, "")
	}
	lines = append(lines, footer)
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, w, "…")
	}
	return strings.Join(lines, "\n")
}

func (m *Model) header(w int) []string {
	ns := m.cfg.Netns
	if ns == "" {
		ns = "this host"
	}
	left := styleTitle.Render("netdrop top") + fmt.Sprintf("  netns %s  every %s", ns, m.interval)
	s := m.shown
	if s.last != nil {
		left += fmt.Sprintf("  %s  %d samples", s.last.Time.Format("15:04:05"), s.samples)
	}
	if m.paused {
		left += "  " + stylePaused.Render(" PAUSED ")
	}
	right := "? help  q quit"
	if pad := w - lipgloss.Width(left) - lipgloss.Width(right); pad > 0 {
		left += strings.Repeat(" ", pad) + right
	}
	var status string
	switch {
	case m.err != nil:
		status = styleErr.Render("reading failed: " + m.err.Error())
	case s.last == nil:
		status = fmt.Sprintf("sampling: the first interval ends in %s…", m.interval)
	default:
		status = m.verdict(s.last.Report)
	}
	return []string{left, status}
}

// verdict is the status line: how many findings of each severity, what
// could not be read.
func (m *Model) verdict(r *diagnose.Report) string {
	var n [3]int
	for _, f := range r.Findings {
		n[f.Severity]++
	}
	var s string
	if len(r.Findings) == 0 {
		s = "no drops in the last interval"
	} else {
		var parts []string
		for _, sv := range []diagnose.Severity{diagnose.Critical, diagnose.Warning, diagnose.Info} {
			if n[sv] > 0 {
				parts = append(parts, styleSev[int8(sv)].Render(fmt.Sprintf("%d %s", n[sv], sv)))
			}
		}
		s = "findings: " + strings.Join(parts, ", ")
	}
	if len(r.Unavailable) > 0 {
		s += styleDim.Render(fmt.Sprintf("   %d sources unavailable (? lists why)", len(r.Unavailable)))
	}
	return s
}

// stageLines is the packet path: a row per stage, RX then TX, with the
// drops per second now, the total since top started, and a sparkline. When
// the body is too short for every stage, quiet ones are left out.
func (m *Model) stageLines(w, body int) []string {
	all := stage.All()
	s := m.shown
	var last point
	if n := len(s.points); n > 0 {
		last = s.points[n-1]
	}
	active := make([]bool, len(all))
	for i := range all {
		active[i] = i == m.cursor
		for _, p := range s.points {
			if p.rate[i] > 0 || p.sev[i] >= 0 {
				active[i] = true
			}
		}
	}
	// Every stage fits if the path leaves six lines for the panels.
	compact := len(all)+3+6 > body
	hidden := 0

	const idW, rateW, totW, peakW = 14, 9, 10, 9
	titleW := 22
	if w < 100 {
		titleW = 0
	}
	sparkW := w - (2 + idW + 1 + titleW + rateW + 1 + totW + 1 + peakW + 2)
	head := fmt.Sprintf("  %-*s %-*s%*s %*s %*s  ", idW, "STAGE", titleW, "", rateW, "DROPS/S", totW, "TOTAL", peakW, "PEAK/S")
	if titleW == 0 {
		head = fmt.Sprintf("  %-*s %*s %*s %*s  ", idW, "STAGE", rateW, "DROPS/S", totW, "TOTAL", peakW, "PEAK/S")
	}
	if sparkW >= 8 {
		head += fmt.Sprintf("LAST %s", fmtSpan(HistorySpan))
	}
	out := []string{styleHead.Render(head)}
	path, pathHead := stage.Path(-1), ""
	for i, st := range all {
		if st.Path != path {
			path = st.Path
			pathHead = "RX path (receive)"
			if path == stage.TX {
				pathHead = "TX path (send)"
			}
		}
		if compact && !active[i] {
			hidden++
			continue
		}
		if pathHead != "" {
			// The direction's heading, above its first row shown.
			out = append(out, styleDim.Render(pathHead))
			pathHead = ""
		}
		var rate float64
		sev := int8(-1)
		if last.rate != nil {
			rate, sev = last.rate[i], last.sev[i]
		}
		peak := 0.0
		for _, p := range s.points {
			peak = max(peak, p.rate[i])
		}
		mark := "  "
		if i == m.cursor {
			mark = "▶ "
		}
		st2 := sevStyle(sev, rate)
		row := mark + fmt.Sprintf("%-*s ", idW, st.ID)
		if titleW > 0 {
			row += fmt.Sprintf("%-*s", titleW, trunc(st.Title, titleW-1))
		}
		row += st2.Render(fmt.Sprintf("%*s", rateW, fmtRate(rate))) +
			fmt.Sprintf(" %*s %*s  ", totW, fmtCount(s.stageTotal[st.ID]), peakW, fmtRate(peak))
		if sparkW >= 8 {
			row += m.sparkline(i, sparkW, peak)
		}
		if i == m.cursor {
			row = styleSelected.Render(ansi.Strip(row))
		}
		out = append(out, row)
	}
	if hidden > 0 {
		out = append(out, styleDim.Render(fmt.Sprintf("  (%d quiet stages hidden: the window is short)", hidden)))
	}
	return out
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws stage i's rate over the last HistorySpan in width
// columns, each the highest rate in its slice of time, coloured by the
// worst severity in it. A column with no sample is blank; a column with
// drops is at least one step above zero so that no drop is invisible.
func (m *Model) sparkline(i, width int, peak float64) string {
	s := m.shown
	if len(s.points) == 0 {
		return ""
	}
	end := s.points[len(s.points)-1].t
	slot := HistorySpan / time.Duration(width)
	rate := make([]float64, width)
	sev := make([]int8, width)
	seen := make([]bool, width)
	for c := range sev {
		sev[c] = -1
	}
	for _, p := range s.points {
		back := end.Sub(p.t)
		c := width - 1 - int(back/slot)
		if c < 0 || c >= width {
			continue
		}
		seen[c] = true
		rate[c] = max(rate[c], p.rate[i])
		sev[c] = max(sev[c], p.sev[i])
	}
	var b strings.Builder
	for c := range width {
		switch {
		case !seen[c]:
			b.WriteByte(' ')
		case rate[c] == 0:
			b.WriteString(styleDim.Render(string(sparks[0])))
		default:
			lvl := 1 + int(math.Round(rate[c]/peak*float64(len(sparks)-2)))
			lvl = min(lvl, len(sparks)-1)
			b.WriteString(sevStyle(sev[c], rate[c]).Render(string(sparks[lvl])))
		}
	}
	return b.String()
}

// panelLines are the findings of the last interval and, when asked for,
// the tracer's top reasons and functions and the sockets that dropped.
func (m *Model) panelLines(w int) []string {
	s := m.shown
	if s.last == nil {
		return nil
	}
	r := s.last.Report
	out := []string{"", styleHead.Render("FINDINGS (last interval, as netdrop diagnose judges them)")}
	if len(r.Findings) == 0 {
		out = append(out, styleDim.Render("  none"))
	}
	for i, f := range r.Findings {
		if i == 6 {
			out = append(out, styleDim.Render(fmt.Sprintf("  … %d more (select the stage and press enter)", len(r.Findings)-i)))
			break
		}
		out = append(out, findingLine(f))
	}
	if m.cfg.Trace {
		out = append(out, "")
		out = append(out, traceLines(s.last, w)...)
	}
	if m.cfg.Sockets {
		out = append(out, "")
		out = append(out, socketLines(s.last)...)
	}
	return out
}

func findingLine(f diagnose.Finding) string {
	sev := styleSev[int8(f.Severity)].Render(fmt.Sprintf("%-8s", f.Severity))
	extra := ""
	if f.Expected != "" {
		extra = styleDim.Render("  (expected: " + f.Expected + ")")
	}
	if f.HostWide {
		extra += styleDim.Render("  (host-wide)")
	}
	return fmt.Sprintf("  %s %-14s %9s/s  %s%s", sev, f.Stage, fmtRate(f.Rate), f.Title, extra)
}

// ranked is a name with a count, for the top tables.
type ranked struct {
	name  string
	count uint64
}

func topOf(m map[string]uint64, n int) []ranked {
	var out []ranked
	for k, v := range m {
		out = append(out, ranked{k, v})
	}
	slices.SortFunc(out, func(a, b ranked) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// traceLines are the drop reasons and the kernel functions the tracer
// counted in the interval, side by side, most first.
func traceLines(s *Sample, w int) []string {
	head := styleHead.Render("DROP REASONS (skb:kfree_skb)") + "          " + styleHead.Render("KERNEL FUNCTIONS")
	if s.Trace == nil {
		return []string{head, styleDim.Render("  the tracer gave no reading this interval")}
	}
	reasons, funcs := map[string]uint64{}, map[string]uint64{}
	for _, r := range s.Trace.Rows {
		reasons[r.ReasonName()] += r.Count
		fn := r.Function
		if fn == "" {
			fn = r.Location
		}
		funcs[fn] += r.Count
	}
	if len(reasons) == 0 {
		return []string{head, styleDim.Render("  no drop traced in the last interval")}
	}
	rs, fs := topOf(reasons, 5), topOf(funcs, 5)
	out := []string{head}
	col := max(38, w/2)
	for i := range max(len(rs), len(fs)) {
		var l, r string
		if i < len(rs) {
			l = fmt.Sprintf("  %9s/s  %s", fmtRate(rate(rs[i].count, s.Interval)), rs[i].name)
		}
		if i < len(fs) {
			r = fmt.Sprintf("%9s/s  %s", fmtRate(rate(fs[i].count, s.Interval)), fs[i].name)
		}
		out = append(out, fmt.Sprintf("%-*s%s", col, trunc(l, col-1), r))
	}
	if s.Trace.LostEvents > 0 {
		out = append(out, styleErr.Render(fmt.Sprintf("  the tracer lost %d events", s.Trace.LostEvents)))
	}
	return out
}

// traceStage is the tracer's rows of one stage (for the focus pane).
func traceStage(s *Sample, id stage.ID) []droptrace.Row {
	if s == nil || s.Trace == nil {
		return nil
	}
	for _, g := range droptrace.ByStage(*s.Trace, droptrace.Hints{}) {
		if g.Stage == id {
			return g.Rows
		}
	}
	return nil
}

// socketLines are the sockets that dropped in the interval with their
// processes.
func socketLines(s *Sample) []string {
	out := []string{styleHead.Render("SOCKETS BY DROPS (sock_diag)")}
	if s.Sockets == nil {
		return append(out, styleDim.Render("  the socket view gave no reading this interval"))
	}
	if len(s.Sockets) == 0 {
		return append(out, styleDim.Render("  no socket dropped in the last interval"))
	}
	for i, d := range s.Sockets {
		if i == 5 {
			out = append(out, styleDim.Render(fmt.Sprintf("  … %d more (netdrop sockets)", len(s.Sockets)-i)))
			break
		}
		what := fmt.Sprintf("rcvbuf %d", d.Rcvbuf)
		if d.Listener {
			what = fmt.Sprintf("accept queue %d/%d", d.Queued, d.Backlog)
		}
		procs := "-"
		if len(d.Processes) > 0 {
			var ps []string
			for _, p := range d.Processes {
				ps = append(ps, p.String())
			}
			procs = strings.Join(ps, ",")
		}
		remote := "*"
		if d.Remote.Port() != 0 || !d.Remote.Addr().IsUnspecified() && d.Remote.Addr().IsValid() {
			remote = d.Remote.String()
		}
		out = append(out, fmt.Sprintf("  %9s/s  %s%s %s → %s  %s  %s  %s", fmtRate(rate(uint64(d.Drops), s.Interval)),
			d.Protocol, strings.TrimPrefix(d.Family, "ipv"), d.Local, remote, d.State, what, procs))
	}
	return out
}

// focusLines describe the selected stage: where it is, its counters that
// moved (this interval and since top started), the findings at it with
// their evidence, cause and fix.
func (m *Model) focusLines(w int) []string {
	st := stage.All()[m.cursor]
	s := m.shown
	out := []string{"", styleHead.Render(fmt.Sprintf("FOCUS %s: %s", st.ID, st.Title)), "  " + st.Where}
	if s.last == nil {
		return append(out, styleDim.Render("  no sample yet"))
	}
	// Counters: every counter of the stage that moved since top started,
	// most first.
	type row struct {
		name, src string
		now, tot  uint64
	}
	now := map[string]uint64{}
	for _, c := range s.last.Moved {
		if c.Stage == st.ID {
			now[string(c.Source)+"\x00"+c.Name()] = c.Value
		}
	}
	var rows []row
	for _, ct := range s.counterTotal {
		if ct.c.Stage != st.ID {
			continue
		}
		rows = append(rows, row{name: ct.c.Name(), src: string(ct.c.Source), now: now[string(ct.c.Source)+"\x00"+ct.c.Name()], tot: ct.total})
	}
	slices.SortFunc(rows, func(a, b row) int {
		if c := cmp.Compare(b.tot, a.tot); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	out = append(out, "", fmt.Sprintf("  %-40s %12s %12s  %s", "COUNTER", "INTERVAL", "SINCE START", "SOURCE"))
	if len(rows) == 0 {
		out = append(out, styleDim.Render("  no counter of this stage moved since top started"))
	}
	for i, r := range rows {
		if i == 8 {
			out = append(out, styleDim.Render(fmt.Sprintf("  … %d more (netdrop counters --stage %s)", len(rows)-i, st.ID)))
			break
		}
		out = append(out, fmt.Sprintf("  %-40s %12d %12d  %s", trunc(r.name, 40), r.now, r.tot, r.src))
	}
	for _, tr := range traceStage(s.last, st.ID) {
		out = append(out, fmt.Sprintf("  %-40s %12d %12s  %s", trunc(tr.Evidence(), 40), tr.Count, "", diagnose.SourceTracer))
	}
	var fs []diagnose.Finding
	for _, f := range s.last.Report.Findings {
		if f.Stage == st.ID {
			fs = append(fs, f)
		}
	}
	if len(fs) == 0 {
		return append(out, "", styleDim.Render("  no finding at this stage in the last interval"))
	}
	for _, f := range fs {
		out = append(out, "", findingLine(f))
		for i, e := range f.Evidence {
			if i == 6 {
				out = append(out, styleDim.Render(fmt.Sprintf("      … %d more", len(f.Evidence)-i)))
				break
			}
			out = append(out, fmt.Sprintf("      %s %+d", e.Name(), e.Delta))
		}
		if f.Cause != "" {
			out = append(out, wrap("    cause: "+f.Cause, w, "           ")...)
		}
		for i, fx := range f.Fix {
			if i == 4 {
				out = append(out, styleDim.Render("      … (netdrop diagnose lists every fix)"))
				break
			}
			out = append(out, wrap("    fix:   "+fixLine(fx), w, "           ")...)
		}
		if f.NotAutomatic != "" {
			out = append(out, wrap("    why not automatic: "+f.NotAutomatic, w, "           ")...)
		}
	}
	return out
}

// fixLine is a fix as the text report writes it: a command runnable as
// printed, an application change or advice.
func fixLine(f diagnose.Fix) string {
	if l := report.CommandLine(f); l != "" {
		return "$ " + l
	}
	if f.Kind == diagnose.FixApp {
		return "application: " + report.AppLine(f)
	}
	return report.AdviceLine(f)
}

func (m *Model) helpLines() []string {
	out := []string{"", styleHead.Render("KEYS")}
	for _, k := range keyHelp {
		out = append(out, fmt.Sprintf("  %-12s %s", k[0], k[1]))
	}
	out = append(out, "",
		"  Each interval is judged as `netdrop diagnose` judges it: a stage's drops/s are",
		"  coloured by its worst finding (red critical, yellow warning, cyan info); TOTAL",
		"  adds up the drops since top started; the sparkline is the last "+fmtSpan(HistorySpan)+",",
		"  each column the highest rate of its slice of time.",
		"  --trace adds the kernel's drop reasons and functions, --sockets the sockets",
		"  that drop with their processes. For a file to keep: netdrop record.")
	if s := m.shown.last; s != nil && len(s.Report.Unavailable) > 0 {
		out = append(out, "", styleHead.Render("UNAVAILABLE (not read, and why)"))
		for _, u := range s.Report.Unavailable {
			out = append(out, fmt.Sprintf("  %s: %s", u.Where(), u.Reason))
		}
	}
	return out
}

func rate(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// fmtRate prints a rate in at most 6 characters.
func fmtRate(r float64) string {
	switch {
	case r == 0:
		return "0"
	case r < 10:
		return fmt.Sprintf("%.1f", r)
	case r < 10000:
		return fmt.Sprintf("%.0f", r)
	case r < 1e6:
		return fmt.Sprintf("%.1fk", r/1e3)
	default:
		return fmt.Sprintf("%.1fM", r/1e6)
	}
}

func fmtCount(n uint64) string {
	if n < 10_000_000 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%.1fM", float64(n)/1e6)
}

func fmtSpan(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return d.String()
}

func trunc(s string, n int) string {
	if n <= 0 {
		return ""
	}
	return ansi.Truncate(s, n, "…")
}

// wrap breaks s into lines of at most w columns, the continuation lines
// starting with indent.
func wrap(s string, w int, indent string) []string {
	if w < 30 {
		return []string{s}
	}
	lines := strings.Split(ansi.Wordwrap(s, w-len(indent), " "), "\n")
	for i := 1; i < len(lines); i++ {
		lines[i] = indent + strings.TrimLeft(lines[i], " ")
	}
	return lines
}
