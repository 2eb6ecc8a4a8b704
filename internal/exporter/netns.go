package exporter

import (
	"cmp"
	"context"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/stage"
)

// netnsSources are the counters read in every namespace with --all-netns:
// those a namespace owns (its MIBs, interfaces, qdiscs, firewall,
// conntrack). Host-wide sources (softnet, interrupts, CPU time, NIC
// drivers) are the host's series already; reading them 200 times would
// only repeat them.
var netnsSources = map[counters.SourceID]bool{
	counters.ProcNetSNMP: true, counters.ProcNetNetstat: true, counters.ProcNetSNMP6: true,
	counters.NetlinkLinkStats: true, counters.NetlinkQdisc: true, counters.NetlinkNftables: true,
	counters.ProcNetStatConntrack: true, counters.ProcSysConntrackCount: true, counters.ProcSysConntrackMax: true,
}

// netnsLabels are the labels of a namespace's series: bounded to one value
// each (its name, its pod, its first container), whatever runs inside.
var netnsLabels = []string{"netns", "pod_namespace", "pod", "container"}

// netnsState is what the collector keeps of one namespace between scrapes.
type netnsState struct {
	prev   *counters.Snapshot
	totals map[stage.ID]uint64
}

// netnsCollector exports, for every network namespace of the host, the
// drops per stage and the findings as diagnose attributes them between two
// scrapes, labelled with the namespace's pod and container (netnsmap). The
// series are cut at the exporter's series cap; what was cut is counted.
type netnsCollector struct {
	discover func(ctx context.Context) (*netnsmap.Map, error)
	sources  []counters.Source
	expect   []diagnose.Expect
	limit    int
	state    map[uint64]*netnsState
	dropped  uint64

	drops, findings, count, cut *prometheus.Desc
}

func newNetnsCollector(o Options) *netnsCollector {
	c := &netnsCollector{
		discover: o.Discover,
		expect:   o.Expect,
		limit:    cmp.Or(o.MaxSeries, DefaultMaxSeries),
		state:    map[uint64]*netnsState{},
		drops: prometheus.NewDesc(namespace+"_netns_stage_drops_total",
			"Packets lost at a stage of the packet path in one network namespace, as netdrop diagnose attributes the deltas between scrapes; only stages that lost packets have a series.",
			append(append([]string(nil), netnsLabels...), "stage"), nil),
		findings: prometheus.NewDesc(namespace+"_netns_findings",
			"Findings of the last scrape interval in one network namespace, per stage and severity; only combinations with a finding have a series.",
			append(append([]string(nil), netnsLabels...), "stage", "severity"), nil),
		count: prometheus.NewDesc(namespace+"_netns_count",
			"Network namespaces on the host, as --all-netns found them in this scrape.", nil, nil),
		cut: prometheus.NewDesc(namespace+"_netns_series_dropped_total",
			"Per-namespace series left out because the scrape reached the series cap (--max-series).", nil, nil),
	}
	if c.discover == nil {
		crisocks := o.CRISockets
		c.discover = func(ctx context.Context) (*netnsmap.Map, error) {
			return netnsmap.Discover(ctx, netnsmap.Options{CRISockets: crisocks})
		}
	}
	for _, s := range counters.DefaultSources() {
		if netnsSources[s.ID()] {
			c.sources = append(c.sources, s)
		}
	}
	if o.Sources != nil {
		c.sources = o.Sources
	}
	return c
}

func (c *netnsCollector) name() string { return "netns" }

func (c *netnsCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.drops
	ch <- c.findings
	ch <- c.count
	ch <- c.cut
}

func (c *netnsCollector) update(ctx context.Context, _ *scrape, ch chan<- prometheus.Metric) error {
	m, err := c.discover(ctx)
	if err != nil {
		return err
	}
	snaps := make([]*counters.Snapshot, len(m.Namespaces))
	each(len(m.Namespaces), func(i int) {
		snaps[i], _ = counters.CollectIn(ctx, m.Namespaces[i].Target(), counters.Options{Sources: c.sources})
	})
	seen := map[uint64]bool{}
	series := 0
	emit := func(metric prometheus.Metric) {
		if series >= c.limit {
			c.dropped++
			return
		}
		series++
		ch <- metric
	}
	for i, n := range m.Namespaces {
		snap := snaps[i]
		if snap == nil {
			continue // gone, or not enterable: no series this scrape
		}
		seen[n.Inode] = true
		st := c.state[n.Inode]
		if st == nil {
			st = &netnsState{totals: map[stage.ID]uint64{}}
			c.state[n.Inode] = st
		}
		var r *diagnose.Report
		if st.prev != nil && snap.Time.After(st.prev.Time) {
			r = diagnose.Analyze(st.prev, snap, snap.Time.Sub(st.prev.Time))
			diagnose.MarkExpected(r, c.expect)
			for _, sd := range r.Stages {
				st.totals[sd.Stage] += sd.Drops
			}
		}
		st.prev = snap
		labels := netnsLabelValues(n)
		for _, s := range stage.All() {
			if v := st.totals[s.ID]; v > 0 {
				emit(prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), append(labels, string(s.ID))...))
			}
		}
		if r == nil {
			continue
		}
		type key struct {
			stage stage.ID
			sev   diagnose.Severity
		}
		counts := map[key]int{}
		for _, f := range r.Findings {
			counts[key{f.Stage, f.Severity}]++
		}
		for k, v := range counts {
			emit(prometheus.MustNewConstMetric(c.findings, prometheus.GaugeValue, float64(v), append(labels, string(k.stage), k.sev.String())...))
		}
	}
	for ino := range c.state {
		if !seen[ino] {
			delete(c.state, ino) // the namespace is gone; so is its counter
		}
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(len(m.Namespaces)))
	ch <- prometheus.MustNewConstMetric(c.cut, prometheus.CounterValue, float64(c.dropped))
	return nil
}

// netnsLabelValues are a namespace's label values: its name, its pod (when
// exactly one has it) and its first workload container, by name where the
// runtime said.
func netnsLabelValues(n *netnsmap.Namespace) []string {
	var podNS, pod, ctr string
	p, hasPod := n.Pod()
	if hasPod {
		podNS, pod = p.Namespace, cmp.Or(p.Name, p.UID)
	}
	for _, c := range n.Containers {
		if hasPod && c.ID == p.SandboxID {
			continue
		}
		ctr = cmp.Or(c.Name, c.Short())
		break
	}
	return []string{n.Label(), podNS, pod, ctr}
}

// each runs fn(0..n-1) on a few goroutines: reading a namespace is mostly
// waiting on the kernel, and a few at once shorten a scrape of hundreds.
func each(n int, fn func(i int)) {
	workers := min(n, max(2, runtime.NumCPU()))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
