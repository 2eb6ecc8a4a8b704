package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"sync"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

// Page is what the HTML report of a recording shows: where and when it
// was recorded, the diagnosis of the whole stretch and the loss per stage
// over time.
type Page struct {
	// Source is the recording's file name, as the user gave it.
	Source                       string
	Host, Kernel, Netns, Netdrop string
	Start, End                   time.Time
	Interval                     time.Duration
	Intervals                    int
	Traced, Sockets              bool
	// Notes are said at the top: a recording cut short, a stretch asked
	// for.
	Notes     []string
	Diagnosis *diagnose.Report
	Timeline  []TimePoint
}

// TimePoint is the drop rate of each stage over one stretch ending at End.
type TimePoint struct {
	Start, End time.Time
	Rates      map[stage.ID]float64
	Drops      map[stage.ID]uint64
}

//go:embed html/report.html.tmpl
var htmlSource string

// htmlTmpl is parsed on first use, not at package init, which every start
// of netdrop would pay (0.7 ms).
var htmlTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"rate":  rateText,
		"count": func(n uint64) string { return fmt.Sprintf("%d", n) },
		"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"half":  func(n int) int { return n / 2 },
	}).Parse(htmlSource))
})

// HTML writes p as one self-contained page: no fetch of any kind (style,
// script and charts are inline, the charts are SVG drawn here), so it can
// be attached to a ticket and opened anywhere.
func HTML(w io.Writer, p Page) error {
	return htmlTmpl().Execute(w, newView(p))
}

// view is the page with everything the template draws computed: the
// template only places it.
type view struct {
	Page
	Title      string
	NetnsLabel string
	Duration   string
	// IntervalText is the recording's interval as set, to the millisecond
	// (a lab recording's one interval is measured, not set).
	IntervalText string
	PathW        int
	PathH        int
	Boxes        []box
	Arrows       []arrow
	Rows         []rowLabel
	Charts       []chart
	Quiet        []string // stages without drops
	Findings     []findingView
	Unavailable  []counters.Unavailable
	Data         chartData
}

type box struct {
	X, Y, W, H int
	ID         stage.ID
	Title      string
	Drops      string
	Rate       string
	Class      string
	Tip        string
}

type arrow struct{ X1, Y, X2 int }

type rowLabel struct {
	X, Y int
	Text string
}

type chart struct {
	Index        int
	Stage        stage.ID
	Title        string
	Class        string
	Total        string
	W, H         int
	Left, Bottom int
	Top, Right   int
	Line, Area   string
	YMax         string
	YMid         string
	YMidPos      int
	XTicks       []tick
}

type tick struct {
	X      int
	Text   string
	Anchor string // text-anchor: the first and last ticks stay inside
}

// chartData is what the page's script needs for the hover read-out.
type chartData struct {
	Charts []chartSeries `json:"charts"`
}

type chartSeries struct {
	Stage string    `json:"stage"`
	W     int       `json:"w"`
	X     []float64 `json:"x"`
	Y     []float64 `json:"y"`
	Rate  []string  `json:"rate"`
	When  []string  `json:"when"`
}

type findingView struct {
	N            int
	Severity     string
	Stage        stage.ID
	Title        string
	Drops        string
	Rate         string
	HostWide     bool
	Expected     string
	Evidence     []diagnose.Evidence
	Cause        string
	Settings     []string
	Manual       []manualLine
	App          []string
	Inspect      []string
	Advice       []string
	AdviceText   string
	NotAutomatic string
	Notes        []string
	Where        string
}

type manualLine struct{ Why, Command string }

// Layout of the path drawing, in SVG units.
const (
	boxW, boxH, boxGap = 84, 64, 12
	pathLeft, pathTop  = 34, 22
	rowGap             = 34
)

// Layout of a chart.
const (
	chartW, chartH                                    = 900, 130
	chartLeft, chartRight, chartTop, chartBottomSpace = 64, 12, 10, 22
)

func newView(p Page) view {
	v := view{Page: p}
	r := p.Diagnosis
	v.Title = "netdrop report — " + p.Host
	v.NetnsLabel = "this host"
	if !counters.IsCurrentNetns(r.Netns) && r.Netns != "" {
		v.NetnsLabel = "network namespace " + r.Netns
	}
	v.Duration = p.End.Sub(p.Start).Round(time.Millisecond).String()
	v.IntervalText = p.Interval.Round(time.Millisecond).String()
	worst := map[stage.ID]diagnose.Severity{}
	has := map[stage.ID]bool{}
	for _, f := range r.Findings {
		if !has[f.Stage] || f.Severity > worst[f.Stage] {
			worst[f.Stage] = f.Severity
		}
		has[f.Stage] = true
	}
	totals := map[stage.ID]diagnose.StageDrops{}
	for _, s := range r.Stages {
		totals[s.Stage] = s
	}
	// The path: RX on the first row, TX on the second, in packet order.
	maxCols := 0
	for row, path := range []stage.Path{stage.RX, stage.TX} {
		ids := stage.OnPath(path)
		maxCols = max(maxCols, len(ids))
		y := pathTop + row*(boxH+rowGap)
		v.Rows = append(v.Rows, rowLabel{X: 4, Y: y + boxH/2 + 4, Text: []string{"RX", "TX"}[row]})
		for i, id := range ids {
			info, _ := stage.Lookup(id)
			x := pathLeft + i*(boxW+boxGap)
			t := totals[id]
			b := box{X: x, Y: y, W: boxW, H: boxH, ID: id, Title: string(id), Drops: "·", Class: "sev-none", Tip: info.Title + ": " + info.Where}
			if has[id] {
				b.Class = "sev-" + worst[id].String()
			}
			if t.Drops > 0 {
				b.Drops = fmt.Sprintf("%d", t.Drops)
				b.Rate = rateText(t.Rate)
			}
			v.Boxes = append(v.Boxes, b)
			if i > 0 {
				v.Arrows = append(v.Arrows, arrow{X1: x - boxGap + 1, Y: y + boxH/2, X2: x - 2})
			}
		}
	}
	v.PathW = pathLeft + maxCols*(boxW+boxGap)
	v.PathH = pathTop + 2*boxH + rowGap + 10
	v.Charts, v.Data, v.Quiet = charts(p, totals, worst, has)
	for i, f := range r.Findings {
		v.Findings = append(v.Findings, newFindingView(i+1, f, r.Netns))
	}
	v.Unavailable = r.Unavailable
	return v
}

// charts draws one drop-rate chart per stage that lost packets in the
// stretch or at any point of the timeline.
func charts(p Page, totals map[stage.ID]diagnose.StageDrops, worst map[stage.ID]diagnose.Severity, has map[stage.ID]bool) ([]chart, chartData, []string) {
	var out []chart
	var data chartData
	var quiet []string
	if len(p.Timeline) == 0 {
		return nil, data, nil
	}
	t0, t1 := p.Timeline[0].Start, p.Timeline[len(p.Timeline)-1].End
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	plotW := float64(chartW - chartLeft - chartRight)
	plotH := float64(chartH - chartTop - chartBottomSpace)
	xOf := func(t time.Time) float64 { return chartLeft + plotW*t.Sub(t0).Seconds()/span }
	for _, info := range stage.All() {
		id := info.ID
		peak := 0.0
		for _, pt := range p.Timeline {
			peak = math.Max(peak, pt.Rates[id])
		}
		if peak == 0 && totals[id].Drops == 0 {
			quiet = append(quiet, string(id))
			continue
		}
		top := niceCeil(peak)
		yOf := func(r float64) float64 { return chartTop + plotH - plotH*r/top }
		c := chart{Index: len(out), Stage: id, Title: info.Title, Class: "sev-none", W: chartW, H: chartH,
			Left: chartLeft, Bottom: chartH - chartBottomSpace, Top: chartTop, Right: chartW - chartRight,
			YMax: rateText(top), YMid: rateText(top / 2), YMidPos: int(yOf(top / 2)),
			Total: fmt.Sprintf("%d drops in the stretch", totals[id].Drops)}
		if has[id] {
			c.Class = "sev-" + worst[id].String()
		}
		s := chartSeries{Stage: string(id), W: chartW}
		// A step line: the rate holds over each stretch it was measured on.
		line := fmt.Sprintf("M%.1f %.1f", xOf(p.Timeline[0].Start), yOf(p.Timeline[0].Rates[id]))
		for _, pt := range p.Timeline {
			y := yOf(pt.Rates[id])
			line += fmt.Sprintf(" L%.1f %.1f L%.1f %.1f", xOf(pt.Start), y, xOf(pt.End), y)
			mid := (xOf(pt.Start) + xOf(pt.End)) / 2
			s.X = append(s.X, round1(mid))
			s.Y = append(s.Y, round1(y))
			s.Rate = append(s.Rate, fmt.Sprintf("%s (%d drops)", rateText(pt.Rates[id]), pt.Drops[id]))
			s.When = append(s.When, pt.Start.UTC().Format("15:04:05")+"–"+pt.End.UTC().Format("15:04:05"))
		}
		c.Line = line
		c.Area = line + fmt.Sprintf(" L%.1f %.1f L%.1f %.1f Z", xOf(t1), yOf(0), xOf(t0), yOf(0))
		layout := "15:04:05"
		if span < 20 {
			layout = "15:04:05.0" // ticks a few seconds apart
		}
		for k := 0; k <= 4; k++ {
			t := t0.Add(time.Duration(float64(k) / 4 * span * float64(time.Second)))
			anchor := "middle"
			switch k {
			case 0:
				anchor = "start"
			case 4:
				anchor = "end"
			}
			c.XTicks = append(c.XTicks, tick{X: int(xOf(t)), Text: t.UTC().Format(layout), Anchor: anchor})
		}
		out = append(out, c)
		data.Charts = append(data.Charts, s)
	}
	return out, data, quiet
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// niceCeil rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// rateText is a rate as the text report prints it, with its unit.
func rateText(r float64) string {
	switch {
	case r == 0:
		return "0/s"
	case r < 10:
		return fmt.Sprintf("%.2g/s", r)
	}
	return fmt.Sprintf("%.0f/s", r)
}

func newFindingView(n int, f diagnose.Finding, ns string) findingView {
	v := findingView{N: n, Severity: f.Severity.String(), Stage: f.Stage, Title: f.Title, Drops: fmt.Sprintf("%d", f.Drops),
		Rate: rateText(f.Rate), HostWide: f.HostWide, Expected: f.Expected, Evidence: f.Evidence, Cause: f.Cause,
		AdviceText: f.Advice, NotAutomatic: f.NotAutomatic, Notes: f.Notes}
	switch {
	case counters.IsCurrentNetns(ns):
		v.Where = "as root"
	case f.HostWide:
		v.Where = "as root, on the host"
	default:
		v.Where = "as root, inside netns " + ns
	}
	for _, x := range f.Fix {
		switch x.Kind {
		case diagnose.FixSetting:
			v.Settings = append(v.Settings, CommandLine(x))
		case diagnose.FixManual:
			v.Manual = append(v.Manual, manualLine{Why: oneLine(x.NotAutomatic), Command: CommandLine(x)})
		case diagnose.FixApp:
			v.App = append(v.App, AppLine(x))
		case diagnose.FixInspect:
			v.Inspect = append(v.Inspect, CommandLine(x))
		case diagnose.FixAdvice:
			v.Advice = append(v.Advice, AdviceLine(x))
		}
	}
	return v
}
