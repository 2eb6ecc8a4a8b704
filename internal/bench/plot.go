package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"text/template"
)

// WritePlot draws r as an SVG: throughput (GB/s) and p50 one-way latency
// (µs, log scale) against message size (log scale), one line per
// transport, with each break-even point against plain TCP marked on its
// panel and listed under the plot. Plain text/template: no plotting
// dependency for one picture.
func WritePlot(w io.Writer, r *Report) error {
	v := buildPlot(r)
	var buf bytes.Buffer
	if err := plotTmpl().Execute(&buf, v); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

var colours = map[string]string{
	TCP: "#1f77b4", Unix: "#ff7f0e", Sendfile: "#2ca02c", ProxyCopy: "#8c564b",
	ProxySplice: "#d62728", ZeroCopy: "#9467bd", Shmring: "#17becf",
}

type plotPoint struct{ X, Y float64 }

type plotSeries struct {
	Name, Colour string
	Points       []plotPoint
	Path         string
}

type plotTick struct {
	Pos   float64
	Label string
}

type plotMark struct {
	X, Y  float64
	Label string
}

type plotPanel struct {
	X0, Y0, W, H float64
	Title, YName string
	XTicks       []plotTick
	YTicks       []plotTick
	Series       []plotSeries
	Marks        []plotMark
}

type plotView struct {
	Width, Height float64
	Title         string
	Panels        []plotPanel
	LegendX       float64
	Legend        []plotLegend
	Notes         []plotNote
}

type plotLegend struct {
	Y            float64
	Name, Colour string
}

type plotNote struct {
	Y    float64
	Text string
}

const (
	panelW, panelH = 440.0, 300.0
	marginL        = 70.0
	marginT        = 50.0
	gap            = 90.0
)

func buildPlot(r *Report) plotView {
	sizes := slices.Clone(r.Sizes)
	slices.Sort(sizes)
	if len(sizes) == 0 {
		sizes = []int{1}
	}
	lx0, lx1 := math.Log2(float64(sizes[0])), math.Log2(float64(sizes[len(sizes)-1]))
	if lx1 == lx0 {
		lx0, lx1 = lx0-1, lx1+1
	}
	xOf := func(p plotPanel, size float64) float64 {
		return p.X0 + (math.Log2(size)-lx0)/(lx1-lx0)*p.W
	}
	var xt []plotTick
	for _, s := range sizes {
		xt = append(xt, plotTick{Pos: (math.Log2(float64(s)) - lx0) / (lx1 - lx0), Label: FormatSize(s)})
	}

	// Throughput: linear from 0 to a round ceiling.
	minG, maxG, minL, maxL := math.Inf(1), 0.0, math.Inf(1), 0.0
	for _, res := range r.Results {
		if res.Error != "" {
			continue
		}
		if res.GBps > 0 {
			minG, maxG = min(minG, res.GBps), max(maxG, res.GBps)
		}
		if res.P50 > 0 {
			minL, maxL = min(minL, res.P50), max(maxL, res.P50)
		}
	}
	if maxG <= 0 {
		minG, maxG = 0.01, 1
	}
	gBot, gTop := math.Floor(math.Log10(minG)), math.Ceil(math.Log10(maxG))
	if gTop == gBot {
		gTop++
	}
	if math.IsInf(minL, 1) {
		minL, maxL = 1, 10
	}
	lBot, lTop := math.Floor(math.Log10(minL)), math.Ceil(math.Log10(maxL))
	if lTop == lBot {
		lTop++
	}

	tp := plotPanel{X0: marginL, Y0: marginT, W: panelW, H: panelH, Title: "Throughput, one-way stream", YName: "GB/s (log scale)", XTicks: xt}
	lp := plotPanel{X0: marginL + panelW + gap, Y0: marginT, W: panelW, H: panelH, Title: "Latency p50, one way (round trip / 2)", YName: "µs (log scale)", XTicks: xt}
	for d := gBot; d <= gTop; d++ {
		tp.YTicks = append(tp.YTicks, plotTick{Pos: (d - gBot) / (gTop - gBot), Label: trimFloat(math.Pow(10, d))})
	}
	for d := lBot; d <= lTop; d++ {
		lp.YTicks = append(lp.YTicks, plotTick{Pos: (d - lBot) / (lTop - lBot), Label: trimFloat(math.Pow(10, d))})
	}
	yG := func(g float64) float64 {
		g = max(g, math.Pow(10, gBot))
		return tp.Y0 + tp.H - (math.Log10(g)-gBot)/(gTop-gBot)*tp.H
	}
	yL := func(us float64) float64 { return lp.Y0 + lp.H - (math.Log10(us)-lBot)/(lTop-lBot)*lp.H }

	byName := map[string][]Result{}
	var names []string
	for _, res := range r.Results {
		if res.Error != "" {
			continue
		}
		if _, ok := byName[res.Transport]; !ok {
			names = append(names, res.Transport)
		}
		byName[res.Transport] = append(byName[res.Transport], res)
	}
	v := plotView{Title: fmt.Sprintf("netdrop bench transport — kernel %s, %d CPUs, %s per measurement", r.Kernel, r.CPUs, r.Duration)}
	for _, name := range names {
		rs := byName[name]
		slices.SortFunc(rs, func(a, b Result) int { return a.Size - b.Size })
		col := colours[name]
		if col == "" {
			col = "#333333"
		}
		ts := plotSeries{Name: name, Colour: col}
		ls := plotSeries{Name: name, Colour: col}
		for _, res := range rs {
			ts.Points = append(ts.Points, plotPoint{xOf(tp, float64(res.Size)), yG(res.GBps)})
			if res.P50 > 0 {
				ls.Points = append(ls.Points, plotPoint{xOf(lp, float64(res.Size)), yL(res.P50)})
			}
		}
		ts.Path, ls.Path = pathOf(ts.Points), pathOf(ls.Points)
		tp.Series = append(tp.Series, ts)
		lp.Series = append(lp.Series, ls)
		v.Legend = append(v.Legend, plotLegend{Y: marginT + 10 + 20*float64(len(v.Legend)), Name: name, Colour: col})
	}
	// Break-even marks sit on the base curve, interpolated like the size.
	base := map[int]Result{}
	for _, res := range byName[TCP] {
		base[res.Size] = res
	}
	var notes []string
	for i, be := range r.BreakEven {
		lo, hi := base[be.Lo], base[be.Hi]
		f := 0.0
		if be.Hi != be.Lo {
			f = (math.Log(be.Size) - math.Log(float64(be.Lo))) / (math.Log(float64(be.Hi)) - math.Log(float64(be.Lo)))
		}
		label := fmt.Sprintf("%d", i+1)
		if be.Metric == "throughput" {
			g := math.Exp(math.Log(lo.GBps) + f*(math.Log(hi.GBps)-math.Log(lo.GBps)))
			tp.Marks = append(tp.Marks, plotMark{xOf(tp, be.Size), yG(g), label})
		} else if lo.P50 > 0 && hi.P50 > 0 {
			l := math.Exp(math.Log(lo.P50) + f*(math.Log(hi.P50)-math.Log(lo.P50)))
			lp.Marks = append(lp.Marks, plotMark{xOf(lp, be.Size), yL(l), label})
		}
		notes = append(notes, fmt.Sprintf("%d. %s: %s overtakes %s above ≈%s (between %s and %s)",
			i+1, be.Metric, be.Faster, be.Slower, ApproxSize(be.Size), FormatSize(be.Lo), FormatSize(be.Hi)))
	}
	if len(notes) == 0 {
		notes = append(notes, "no break-even against tcp between the measured sizes")
	}
	for _, n := range r.Notes {
		notes = append(notes, wrap(n, 150)...)
	}
	notesY := marginT + panelH + 70
	for i, n := range notes {
		v.Notes = append(v.Notes, plotNote{Y: notesY + 18*float64(i), Text: n})
	}
	v.Panels = []plotPanel{tp, lp}
	v.LegendX = 2*panelW + gap + marginL + 20
	v.Width = v.LegendX + 120
	v.Height = notesY + 18*float64(len(notes)) + 10
	return v
}

func pathOf(ps []plotPoint) string {
	var b bytes.Buffer
	for i, p := range ps {
		if i == 0 {
			fmt.Fprintf(&b, "M%.1f,%.1f", p.X, p.Y)
		} else {
			fmt.Fprintf(&b, " L%.1f,%.1f", p.X, p.Y)
		}
	}
	return b.String()
}

// wrap splits s into lines of at most width bytes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	for len(s) > width {
		cut := strings.LastIndexByte(s[:width], ' ')
		if cut <= 0 {
			cut = width
		}
		lines = append(lines, s[:cut])
		s = "    " + strings.TrimLeft(s[cut:], " ")
	}
	return append(lines, s)
}

func trimFloat(f float64) string { return fmt.Sprintf("%g", math.Round(f*1000)/1000) }

func xmlEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// plotTmpl is parsed on first use, not at package init (which every start
// of netdrop would pay).
var plotTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("plot").Funcs(template.FuncMap{
		"x":       xmlEscape,
		"add":     func(a, b float64) float64 { return a + b },
		"mul":     func(a, b float64) float64 { return a * b },
		"sub":     func(a, b float64) float64 { return a - b },
		"marginL": func() float64 { return marginL },
	}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{{mul .Width 0.5}}" y="20" text-anchor="middle" font-size="14">{{x .Title}}</text>
{{- range .Panels}}{{$p := .}}
<g>
<text x="{{add .X0 (mul .W 0.5)}}" y="{{sub .Y0 10}}" text-anchor="middle">{{x .Title}}</text>
<rect x="{{.X0}}" y="{{.Y0}}" width="{{.W}}" height="{{.H}}" fill="none" stroke="#888"/>
{{- range .XTicks}}
<line x1="{{add $p.X0 (mul .Pos $p.W)}}" y1="{{$p.Y0}}" x2="{{add $p.X0 (mul .Pos $p.W)}}" y2="{{add $p.Y0 $p.H}}" stroke="#eee"/>
<text x="{{add $p.X0 (mul .Pos $p.W)}}" y="{{add $p.Y0 (add $p.H 16)}}" text-anchor="middle">{{x .Label}}</text>
{{- end}}
{{- range .YTicks}}
<line x1="{{$p.X0}}" y1="{{sub (add $p.Y0 $p.H) (mul .Pos $p.H)}}" x2="{{add $p.X0 $p.W}}" y2="{{sub (add $p.Y0 $p.H) (mul .Pos $p.H)}}" stroke="#eee"/>
<text x="{{sub $p.X0 6}}" y="{{add (sub (add $p.Y0 $p.H) (mul .Pos $p.H)) 4}}" text-anchor="end">{{x .Label}}</text>
{{- end}}
<text x="{{add $p.X0 (mul $p.W 0.5)}}" y="{{add $p.Y0 (add $p.H 34)}}" text-anchor="middle">message size (bytes, log scale)</text>
<text x="{{sub $p.X0 50}}" y="{{add $p.Y0 (mul $p.H 0.5)}}" text-anchor="middle" transform="rotate(-90 {{sub $p.X0 50}} {{add $p.Y0 (mul $p.H 0.5)}})">{{x .YName}}</text>
{{- range .Series}}{{$s := .}}
<path d="{{.Path}}" fill="none" stroke="{{.Colour}}" stroke-width="2"/>
{{- range .Points}}
<circle cx="{{printf "%.1f" .X}}" cy="{{printf "%.1f" .Y}}" r="3" fill="{{$s.Colour}}"><title>{{x $s.Name}}</title></circle>
{{- end}}
{{- end}}
{{- range .Marks}}
<line x1="{{printf "%.1f" .X}}" y1="{{$p.Y0}}" x2="{{printf "%.1f" .X}}" y2="{{add $p.Y0 $p.H}}" stroke="#000" stroke-dasharray="4 3"/>
<rect x="{{printf "%.1f" (sub .X 5)}}" y="{{printf "%.1f" (sub .Y 5)}}" width="10" height="10" transform="rotate(45 {{printf "%.1f" .X}} {{printf "%.1f" .Y}})" fill="#000"/>
<text x="{{printf "%.1f" (add .X 8)}}" y="{{printf "%.1f" (sub .Y 8)}}" font-weight="bold">{{x .Label}}</text>
{{- end}}
</g>
{{- end}}
{{- range .Legend}}
<rect x="{{$.LegendX}}" y="{{sub .Y 6}}" width="16" height="4" fill="{{.Colour}}"/>
<text x="{{add $.LegendX 22}}" y="{{.Y}}">{{x .Name}}</text>
{{- end}}
{{- range .Notes}}
<text x="{{marginL}}" y="{{.Y}}">{{x .Text}}</text>
{{- end}}
</svg>
`))
})
