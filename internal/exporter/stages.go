package exporter

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

var errNoSnapshot = errors.New("no counter snapshot in this scrape")

// stagesCollector attributes drops to stages the way netdrop diagnose does,
// between the previous scrape and this one, and keeps a running total per
// stage. The total is a proper counter: Prometheus's rate() over it is the
// drop rate per stage whatever the scrape interval, and it does not depend
// on the kernel counters' own names. The first scrape has nothing to
// compare with and adds nothing.
type stagesCollector struct {
	totals map[stage.ID]uint64
	// prev is the snapshot of the previous scrape.
	prev *counters.Snapshot
	// expect marks the findings the user declared intended.
	expect []diagnose.Expect

	drops, interval *prometheus.Desc
}

func newStagesCollector(expect []diagnose.Expect) *stagesCollector {
	c := &stagesCollector{
		totals: map[stage.ID]uint64{},
		expect: expect,
		drops: prometheus.NewDesc(namespace+"_stage_drops_total",
			"Packets lost at a stage of the packet path, as netdrop diagnose attributes the counter deltas between scrapes (a stage's drops are the largest among its findings, not their sum).",
			[]string{"stage"}, nil),
		interval: prometheus.NewDesc(namespace+"_stage_interval_seconds",
			"The interval the last drop attribution covered (time since the previous scrape).", nil, nil),
	}
	for _, s := range stage.All() {
		c.totals[s.ID] = 0
	}
	return c
}

func (c *stagesCollector) name() string { return "stages" }

func (c *stagesCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.drops
	ch <- c.interval
}

func (c *stagesCollector) update(_ context.Context, s *scrape, ch chan<- prometheus.Metric) error {
	if s.snap == nil {
		return errNoSnapshot
	}
	var r *diagnose.Report
	if c.prev != nil && s.snap.Time.After(c.prev.Time) {
		r = diagnose.Analyze(c.prev, s.snap, s.snap.Time.Sub(c.prev.Time))
		diagnose.MarkExpected(r, c.expect)
		for _, sd := range r.Stages {
			c.totals[sd.Stage] += sd.Drops
		}
		s.report = r
	}
	c.prev = s.snap
	for _, st := range stage.All() {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(c.totals[st.ID]), string(st.ID))
	}
	if r == nil {
		return nil
	}
	ch <- prometheus.MustNewConstMetric(c.interval, prometheus.GaugeValue, r.IntervalS)
	return nil
}

// findingsCollector exports the findings of the last interval as a count
// per stage and severity. Every combination is exported, zeros included,
// so an alert can tell "no finding" from "no data".
type findingsCollector struct {
	findings, worst, expected *prometheus.Desc
}

func newFindingsCollector() *findingsCollector {
	return &findingsCollector{
		findings: prometheus.NewDesc(namespace+"_findings",
			"Findings of netdrop diagnose over the last scrape interval, by stage and severity.",
			[]string{"stage", "severity"}, nil),
		worst: prometheus.NewDesc(namespace+"_findings_worst_severity",
			"The highest severity among the current findings: 0 none, 1 info, 2 warning, 3 critical.", nil, nil),
		expected: prometheus.NewDesc(namespace+"_findings_expected",
			"Findings of the last scrape interval that --expect declared intended (counted as info in netdrop_findings), by stage.",
			[]string{"stage"}, nil),
	}
}

func (c *findingsCollector) name() string { return "findings" }

func (c *findingsCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.findings
	ch <- c.worst
	ch <- c.expected
}

var severities = []diagnose.Severity{diagnose.Info, diagnose.Warning, diagnose.Critical}

func (c *findingsCollector) update(_ context.Context, s *scrape, ch chan<- prometheus.Metric) error {
	if s.snap == nil {
		return errNoSnapshot
	}
	if s.report == nil {
		// First scrape: no interval yet, so no finding can be claimed
		// either way; the series appear from the second scrape on.
		return nil
	}
	type key struct {
		st  stage.ID
		sev diagnose.Severity
	}
	n := map[key]int{}
	expected := map[stage.ID]int{}
	worst := 0
	for _, f := range s.report.Findings {
		n[key{f.Stage, f.Severity}]++
		if f.Expected != "" {
			expected[f.Stage]++
		}
		if int(f.Severity)+1 > worst {
			worst = int(f.Severity) + 1
		}
	}
	for _, st := range stage.All() {
		for _, sev := range severities {
			ch <- prometheus.MustNewConstMetric(c.findings, prometheus.GaugeValue, float64(n[key{st.ID, sev}]), string(st.ID), sev.String())
		}
		ch <- prometheus.MustNewConstMetric(c.expected, prometheus.GaugeValue, float64(expected[st.ID]), string(st.ID))
	}
	ch <- prometheus.MustNewConstMetric(c.worst, prometheus.GaugeValue, float64(worst))
	return nil
}
