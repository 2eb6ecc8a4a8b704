package exporter

import (
	"cmp"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
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
	prev   *keptReading
	totals map[stage.ID]uint64
	// quiet is the analysis of an interval in which nothing of the
	// namespace changed, kept while nothing changes: diagnose would
	// find the same again (every delta zero, the same levels and
	// settings), and most namespaces of a node are quiet between two
	// scrapes. Any change drops it.
	quiet *netnsAnalysis
	// last is this scrape's analysis (nil when there was nothing to
	// compare with); ok says the namespace was read at all.
	last *netnsAnalysis
	ok   bool
	// files are the namespace's conntrack sysctls and netlink sockets,
	// kept open from one scrape to the next (counters.KeptFiles says
	// why) and closed when the namespace is gone: a netlink socket
	// holds its namespace.
	files counters.KeptFiles
}

// netnsAnalysis is what a namespace's series say of one interval: the drops
// per stage and the number of findings per stage and severity.
type netnsAnalysis struct {
	drops    []diagnose.StageDrops
	findings map[findingKey]int
}

// findingKey is one series of netdrop_netns_findings.
type findingKey struct {
	stage stage.ID
	sev   diagnose.Severity
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
	layouts  *layouts
	now      func() time.Time
	dropped  uint64

	drops, findings, count, cut *prometheus.Desc
}

func newNetnsCollector(o Options) *netnsCollector {
	c := &netnsCollector{
		discover: o.Discover,
		expect:   o.Expect,
		limit:    cmp.Or(o.MaxSeries, DefaultMaxSeries),
		state:    map[uint64]*netnsState{},
		layouts:  newLayouts(),
		now:      o.Now,
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
	if c.now == nil {
		c.now = time.Now
	}
	if c.discover == nil {
		// Every scrape discovers: the cache spares asking the
		// runtime again for each sandbox's namespace.
		crisocks, cache := o.CRISockets, &netnsmap.Cache{}
		c.discover = func(ctx context.Context) (*netnsmap.Map, error) {
			return netnsmap.Discover(ctx, netnsmap.Options{CRISockets: crisocks, Cache: cache})
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
	// Every namespace is read into a worker's scratch snapshot and
	// analysed there, against what was kept of it; a quiet namespace's
	// reading leaves nothing behind. The states are made first so that
	// the workers only read the map.
	states := make([]*netnsState, len(m.Namespaces))
	for i, n := range m.Namespaces {
		st := c.state[n.Inode]
		if st == nil {
			st = &netnsState{totals: map[stage.ID]uint64{}}
			c.state[n.Inode] = st
		}
		st.ok, st.last = false, nil
		states[i] = st
	}
	each(len(m.Namespaces), func(i int, scratch *counters.Snapshot) {
		if c.read(ctx, m.Namespaces[i].Target(), &states[i].files, scratch) {
			c.analyse(states[i], scratch)
		}
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
		st := states[i]
		if !st.ok {
			continue // gone, or not enterable: no series this scrape
		}
		seen[n.Inode] = true
		labels := netnsLabelValues(n)
		for _, s := range stage.All() {
			if v := st.totals[s.ID]; v > 0 {
				emit(prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), append(labels, string(s.ID))...))
			}
		}
		if st.last == nil {
			continue
		}
		for k, v := range st.last.findings {
			emit(prometheus.MustNewConstMetric(c.findings, prometheus.GaugeValue, float64(v), append(labels, string(k.stage), k.sev.String())...))
		}
	}
	for ino := range c.state {
		if !seen[ino] {
			// The namespace is gone; so are its counter and files.
			_ = c.state[ino].files.Close()
			delete(c.state, ino)
		}
	}
	c.layouts.keep(func(yield func(*counterLayout) bool) {
		for _, st := range c.state {
			if st.prev != nil && !yield(st.prev.layout) {
				return
			}
		}
	})
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(len(m.Namespaces)))
	ch <- prometheus.MustNewConstMetric(c.cut, prometheus.CounterValue, float64(c.dropped))
	return nil
}

// read takes the snapshot of namespace t into s, a worker's scratch
// snapshot, and reports whether t could be entered. files are the files
// kept open in t from its last reading. It enters once and
// reads the sources in turn on that thread: the collector already reads
// several namespaces at once (each), and CollectIn's parallel readers
// would cost two more entries (setns there and back) per namespace for
// no gain. The sources are those of counters.Collect, read as it reads
// them without Enter.
func (c *netnsCollector) read(ctx context.Context, t netns.Target, files *counters.KeptFiles, s *counters.Snapshot) bool {
	clear(s.Sysctls)
	*s = counters.Snapshot{Netns: t.String(), Counters: s.Counters[:0], Unavailable: s.Unavailable[:0], Sysctls: s.Sysctls}
	if s.Sysctls == nil {
		s.Sysctls = map[string]string{}
	}
	err := doOnOwnThread(t, func() error {
		s.Time = c.now()
		r := counters.NewReading(counters.DefaultFS())
		r.Kept = files
		for _, src := range c.sources {
			if err := ctx.Err(); err != nil {
				s.Fail(src.ID(), err)
				continue
			}
			if err := src.Collect(ctx, r, s); err != nil {
				s.Fail(src.ID(), err)
			}
		}
		return nil
	})
	return err == nil
}

// doOnOwnThread runs t.Do(fn) on a goroutine of its own. netns.Do leaves
// its thread locked when it cannot return to the original namespace, so
// that the runtime discards the thread when the goroutine ends; on each's
// long-lived workers that goroutine would not end, and the next namespace
// read there — the host's own above all, which Do reads without setns —
// would be read in the stuck one and labelled wrongly. A goroutine per
// namespace costs about a microsecond against the 0.3 ms of reading it.
func doOnOwnThread(t netns.Target, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- t.Do(fn) }()
	return <-done
}

// analyse compares a namespace's new reading, in a worker's scratch
// snapshot, with what st kept of the last, adds the drops diagnose finds
// to st's totals and keeps the new reading. It runs on the workers, one
// namespace each: st is this namespace's alone.
func (c *netnsCollector) analyse(st *netnsState, scratch *counters.Snapshot) {
	st.ok = true
	switch {
	case st.prev != nil && st.prev.same(scratch):
		if !scratch.Time.After(st.prev.time) {
			return // a clock step: nothing to compare
		}
		// Nothing changed: what diagnose says of the reading against
		// itself over the interval is what it said the last time
		// nothing changed.
		if st.quiet == nil {
			prev := st.prev.snapshot()
			st.quiet = c.analysis(prev, prev, scratch.Time.Sub(st.prev.time))
		}
		st.last = st.quiet
		st.prev.time = scratch.Time
	case st.prev != nil && scratch.Time.After(st.prev.time):
		st.last = c.analysis(st.prev.snapshot(), scratch, scratch.Time.Sub(st.prev.time))
		st.quiet = nil
		st.prev = keepReading(c.layouts, st.prev, scratch)
	default:
		st.quiet = nil
		st.prev = keepReading(c.layouts, st.prev, scratch)
	}
	if st.last != nil {
		for _, sd := range st.last.drops {
			st.totals[sd.Stage] += sd.Drops
		}
	}
}

// analysis is what diagnose finds between two readings of a namespace,
// with the drops declared expected marked, as the series report it.
func (c *netnsCollector) analysis(a, b *counters.Snapshot, interval time.Duration) *netnsAnalysis {
	r := diagnose.Analyze(a, b, interval)
	diagnose.MarkExpected(r, c.expect)
	out := &netnsAnalysis{findings: map[findingKey]int{}}
	for _, sd := range r.Stages {
		if sd.Drops > 0 {
			out.drops = append(out.drops, sd)
		}
	}
	for _, f := range r.Findings {
		out.findings[findingKey{f.Stage, f.Severity}]++
	}
	return out
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
// Each goroutine hands fn a scratch snapshot of its own, reused from one
// call to the next.
func each(n int, fn func(i int, scratch *counters.Snapshot)) {
	workers := min(n, max(2, runtime.NumCPU()))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := scratchSnapshots.Get().(*counters.Snapshot)
			defer scratchSnapshots.Put(scratch)
			for i := range next {
				fn(i, scratch)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// scratchSnapshots keep the workers' scratch snapshots from one scrape to
// the next, so that reading a namespace does not grow a new one each time.
var scratchSnapshots = sync.Pool{New: func() any { return &counters.Snapshot{} }}
