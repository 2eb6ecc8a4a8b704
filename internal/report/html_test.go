package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

// htmlPage is a diagnosis as the rule for a full UDP receive buffer makes
// it, over a timeline with one burst, named after a process whose name
// tries to break out of the page (a comm is whatever a process sets).
func htmlPage() Page {
	t0 := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	evil := `</script><script>alert(1)</script>`
	r := &diagnose.Report{Netns: "web", IntervalS: 4, Findings: []diagnose.Finding{{
		Stage: stage.SocketRcvbuf, Severity: diagnose.Critical, Title: "UDP receive buffers full: 10.0.0.2:53 (" + evil + ")",
		Drops: 4000, Rate: 1000,
		Evidence: []diagnose.Evidence{{Source: counters.ProcNetSNMP, Field: "Udp:RcvbufErrors", Delta: 4000}},
		Cause:    "datagrams arrived faster than the application read them",
		Fix: []diagnose.Fix{
			{Kind: diagnose.FixSetting, Command: "sysctl -w net.core.rmem_max=26214400", Now: "212992"},
			{Kind: diagnose.FixAdvice, Text: "read faster"},
		},
	}}, Unavailable: []counters.Unavailable{{Source: counters.EthtoolStats, Object: "eth0", Reason: "not supported"}}}
	for _, s := range stage.All() {
		d := diagnose.StageDrops{Stage: s.ID}
		if s.ID == stage.SocketRcvbuf {
			d.Drops, d.Rate = 4000, 1000
		}
		r.Stages = append(r.Stages, d)
	}
	var tl []TimePoint
	for i := range 4 {
		p := TimePoint{Start: t0.Add(time.Duration(i) * time.Second), End: t0.Add(time.Duration(i+1) * time.Second),
			Rates: map[stage.ID]float64{}, Drops: map[stage.ID]uint64{}}
		if i == 2 {
			p.Rates[stage.SocketRcvbuf], p.Drops[stage.SocketRcvbuf] = 4000, 4000
		}
		tl = append(tl, p)
	}
	return Page{Source: "x.ndrec", Host: "web-3", Kernel: "6.18.0", Netdrop: "netdrop test", Start: t0, End: t0.Add(4 * time.Second),
		Interval: time.Second, Intervals: 5, Diagnosis: r, Timeline: tl}
}

func TestHTML(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, htmlPage()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		"<title>netdrop report — web-3</title>",
		`data-stage="socket-rcvbuf"`,
		`class="stage sev-critical" data-stage="socket-rcvbuf"`,
		`aria-label="drop rate of socket-rcvbuf over time"`,
		"sysctl -w net.core.rmem_max=26214400  # now 212992",
		"network namespace web",
		"ethtool -S eth0",
		"6.18.0",
		"2026-12-05 14:00:00 UTC",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// One chart: only the stage that dropped.
	if n := strings.Count(page, `<svg class="chart`); n != 1 {
		t.Errorf("%d charts, want 1", n)
	}
	if n := strings.Count(page, `<g class="stage`); n != len(stage.All()) {
		t.Errorf("%d stage boxes, want %d", n, len(stage.All()))
	}
	// The process name stays text, in the page and in the chart data.
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a process name became markup")
	}
	if n := strings.Count(page, "<script"); n != 2 {
		t.Errorf("%d script elements, want the data and the page's own", n)
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|https?://|@import`).FindString(page); m != "" {
		t.Errorf("the page refers outside itself: %q", m)
	}
}

func TestHTMLQuiet(t *testing.T) {
	p := htmlPage()
	p.Diagnosis.Findings = nil
	p.Diagnosis.Unavailable = nil
	for i := range p.Diagnosis.Stages {
		p.Diagnosis.Stages[i].Drops, p.Diagnosis.Stages[i].Rate = 0, 0
	}
	for i := range p.Timeline {
		p.Timeline[i].Rates = map[stage.ID]float64{}
	}
	var b bytes.Buffer
	if err := HTML(&b, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"No stage lost packets in this stretch.", "No drops or near-drops found.", "Every source was read."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {0.3, 0.5}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {1998, 2000}, {2001, 5000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
