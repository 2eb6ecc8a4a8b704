// Package exporter serves netdrop's evidence as Prometheus metrics: every
// kernel counter with the stage of the packet path it is evidence for, the
// drops per stage as diagnose attributes them between two scrapes, the
// current findings, conntrack use, a bounded socket view (TIME_WAIT per
// destination, listen queue fill) and, with a tracer, the in-kernel drop
// aggregates by reason, location and stage.
//
// It is built like node_exporter: one small collector per kind of evidence,
// each reporting its own success and duration, so a source that cannot be
// read costs its own metrics and a self-metric, never the scrape. Label
// cardinality is bounded: per-destination and per-listener series are cut to
// the top N, and every other label comes from a fixed vocabulary (stages,
// severities, kernel counter names).
//
// It does not decide what a drop means (diagnose does) and reads the kernel
// only through counters/, sockets/ and droptrace/.
package exporter

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/sockets"
)

// DefaultListen is the exporter's address: loopback, so that exposing the
// host's drop evidence to the network is a decision someone takes.
// 9469 is unassigned in the Prometheus default port allocations list at the
// time of writing.
const DefaultListen = "127.0.0.1:9469"

// DefaultTop bounds the per-destination and per-listener series.
const DefaultTop = 10

// namespace prefixes every metric name.
const namespace = "netdrop"

// Options configures an Exporter.
type Options struct {
	// Netns is the network namespace to watch; the zero Target is the
	// exporter's own.
	Netns netns.Target
	// FS is where kernel files are read; zero reads the running kernel.
	FS counters.FS
	// Sources replaces the counter sources (tests); nil reads them all.
	Sources []counters.Source
	// Top is how many destinations and listeners get their own series;
	// 0 means DefaultTop.
	Top int
	// NoSockets turns the socket collector off (it walks every socket of
	// the namespace on each scrape).
	NoSockets bool
	// Summarize replaces the socket reader (tests).
	Summarize func(ctx context.Context, opts sockets.Options) (*sockets.Summary, error)
	// Tracer, when set, adds the in-kernel drop aggregates (a started
	// droptrace.Tracer; the caller closes it).
	Tracer Tracer
	// TraceSeries bounds the trace series; 0 means DefaultTraceSeries.
	TraceSeries int
	// Now replaces the clock that stamps snapshots (tests).
	Now func() time.Time
	// Logger receives debug lines for sources that are missing.
	Logger *slog.Logger
	// Timeout bounds one scrape; 0 means 10 s.
	Timeout time.Duration
	// Expect declares drops the user intends (diagnose.Expect): their
	// findings count as info and in netdrop_findings_expected, and still
	// in the stage drop totals.
	Expect []diagnose.Expect
	// Build is what netdrop_build_info says; zero reads the running binary.
	Build buildinfo.Info
	// Interfaces selects the interfaces whose series (link statistics,
	// qdiscs, driver statistics) are exported; the zero Filter keeps all.
	// Diagnosis still sees every interface.
	Interfaces Filter
	// IRQs selects the /proc/interrupts lines exported, matched against
	// the IRQ number and its devices ("41 virtio3-rx").
	IRQs Filter
	// MaxSeries bounds the kernel counter series of a scrape; 0 means
	// DefaultMaxSeries.
	MaxSeries int
	// AllNetns adds the per-namespace collector: drops per stage and
	// findings of every network namespace of the host, labelled with its
	// pod and container (netnsmap).
	AllNetns bool
	// CRISockets are the CRI runtimes asked for pods (netnsmap.Options).
	CRISockets []string
	// Discover replaces the namespace map (tests).
	Discover func(ctx context.Context) (*netnsmap.Map, error)
}

// collector is one kind of evidence. Update sends its metrics for the scrape
// in s and returns an error only when it could send nothing useful.
type collector interface {
	name() string
	describe(ch chan<- *prometheus.Desc)
	update(ctx context.Context, s *scrape, ch chan<- prometheus.Metric) error
}

// scrape is what one Collect shares between collectors: the counter
// snapshot is read once and analysed once per scrape.
type scrape struct {
	snap   *counters.Snapshot
	report *diagnose.Report
}

// Exporter is a prometheus.Collector over netdrop's evidence.
type Exporter struct {
	opts       Options
	collectors []collector

	// mu serialises scrapes: the stage collector keeps the previous
	// snapshot, and two concurrent scrapes must not interleave on it.
	mu sync.Mutex

	success, duration *prometheus.Desc
}

// New returns an Exporter; register it with a prometheus.Registry.
func New(opts Options) *Exporter {
	if opts.Top == 0 {
		opts.Top = DefaultTop
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Summarize == nil {
		opts.Summarize = sockets.Summarize
	}
	e := &Exporter{
		opts: opts,
		success: prometheus.NewDesc(namespace+"_scrape_collector_success",
			"Whether a netdrop collector succeeded (1) or failed (0) in this scrape.", []string{"collector"}, nil),
		duration: prometheus.NewDesc(namespace+"_scrape_collector_duration_seconds",
			"How long a netdrop collector took in this scrape.", []string{"collector"}, nil),
	}
	e.collectors = []collector{
		newCountersCollector(e),
		newStagesCollector(opts.Expect),
		newFindingsCollector(),
		newConntrackCollector(e),
	}
	if !opts.NoSockets {
		e.collectors = append(e.collectors, newSocketsCollector(e))
	}
	if opts.Tracer != nil {
		e.collectors = append(e.collectors, newTraceCollector(opts.Tracer, opts.TraceSeries))
	}
	if opts.AllNetns {
		e.collectors = append(e.collectors, newNetnsCollector(opts))
	}
	return e
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.success
	ch <- e.duration
	for _, c := range e.collectors {
		c.describe(ch)
	}
}

// Collect implements prometheus.Collector. The counter chain (counters,
// then the stage attribution and the findings that analyse its snapshot)
// runs in order; the independent collectors (conntrack, sockets, trace) run
// beside it, so a scrape takes about as long as its slowest part rather
// than the sum.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), e.opts.Timeout)
	defer cancel()
	s := &scrape{}
	var chain, alone []collector
	for _, c := range e.collectors {
		switch c.(type) {
		case *countersCollector, *stagesCollector, *findingsCollector:
			chain = append(chain, c)
		default:
			alone = append(alone, c)
		}
	}
	var wg sync.WaitGroup
	for _, c := range alone {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.run(ctx, c, &scrape{}, ch)
		}()
	}
	for _, c := range chain {
		e.run(ctx, c, s, ch)
	}
	wg.Wait()
}

// run updates one collector and reports its success and duration.
func (e *Exporter) run(ctx context.Context, c collector, s *scrape, ch chan<- prometheus.Metric) {
	start := time.Now()
	err := c.update(ctx, s, ch)
	d := time.Since(start).Seconds()
	ok := 1.0
	if err != nil {
		ok = 0
		e.opts.Logger.Debug("collector failed", "collector", c.name(), "err", err)
	}
	ch <- prometheus.MustNewConstMetric(e.duration, prometheus.GaugeValue, d, c.name())
	ch <- prometheus.MustNewConstMetric(e.success, prometheus.GaugeValue, ok, c.name())
}

// inNetns runs fn inside the watched namespace.
func (e *Exporter) inNetns(fn func() error) error { return e.opts.Netns.Do(fn) }

// Handler returns the HTTP handler: /metrics, and a landing page at /.
func Handler(reg *prometheus.Registry, opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             opts.Timeout + 5*time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		ns := opts.Netns.Spec()
		if ns == "" {
			ns = "the exporter's own"
		}
		fmt.Fprintf(w, "<html><head><title>netdrop exporter</title></head><body><h1>netdrop exporter</h1><p>Packet drops per stage of the packet path, network namespace %s.</p><p><a href=\"/metrics\">Metrics</a></p></body></html>\n", html.EscapeString(ns))
	})
	return mux
}

// NewRegistry returns a registry holding an Exporter for opts.
func NewRegistry(opts Options) (*prometheus.Registry, *Exporter, error) {
	reg := prometheus.NewRegistry()
	e := New(opts)
	if err := reg.Register(e); err != nil {
		return nil, nil, fmt.Errorf("register exporter: %w", err)
	}
	reg.MustRegister(buildInfoCollector(cmp.Or(opts.Build, buildinfo.Read())))
	return reg, e, nil
}
