package exporter

import (
	"context"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// Tracer is what the trace collector reads: a started droptrace.Tracer,
// or a fake in tests.
type Tracer interface {
	Snapshot() (droptrace.Snapshot, error)
}

// DefaultTraceSeries bounds the (reason, location, stage) series.
const DefaultTraceSeries = 200

// traceCollector exports the in-kernel drop aggregates: drops since the
// tracer started by reason, code location and stage, summed over
// namespaces, interfaces and protocols (those stay in netdrop trace, where
// a person asks for them). Drop sites are code locations, a finite set, but
// to stay bounded whatever happens the first maxSeries keys seen keep their
// own series and later ones are summed in netdrop_trace_drops_other_total.
// Membership never changes once given, so every series, the overflow one
// included, only grows, as a counter must.
type traceCollector struct {
	t         Tracer
	maxSeries int
	admitted  map[traceKey]bool

	drops, other, noise, unattributed *prometheus.Desc
}

type traceKey struct {
	reason, location string
	stage            stage.ID
}

func newTraceCollector(t Tracer, maxSeries int) *traceCollector {
	if maxSeries <= 0 {
		maxSeries = DefaultTraceSeries
	}
	return &traceCollector{
		t:         t,
		maxSeries: maxSeries,
		admitted:  map[traceKey]bool{},
		drops: prometheus.NewDesc(namespace+"_trace_drops_total",
			"Packets freed as dropped at the skb:kfree_skb tracepoint since the exporter started, by the kernel's drop reason, the freeing code location (function+offset) and the stage netdrop maps them to.",
			[]string{"reason", "location", "stage"}, nil),
		other: prometheus.NewDesc(namespace+"_trace_drops_other_total",
			"Traced drops at locations beyond the series limit (see netdrop trace for them).", nil, nil),
		noise: prometheus.NewDesc(namespace+"_trace_noise_total",
			"Packets freed through kfree_skb that are not loss (queue purges on close, multicast not for this host), by reason.",
			[]string{"reason"}, nil),
		unattributed: prometheus.NewDesc(namespace+"_trace_unattributed_total",
			"Traced drops that found the in-kernel aggregation map full and are in no row.", nil, nil),
	}
}

func (c *traceCollector) name() string { return "trace" }

func (c *traceCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.drops
	ch <- c.other
	ch <- c.noise
	ch <- c.unattributed
}

func (c *traceCollector) update(_ context.Context, _ *scrape, ch chan<- prometheus.Metric) error {
	snap, err := c.t.Snapshot()
	if err != nil {
		return err
	}
	sums := map[traceKey]uint64{}
	for _, r := range snap.Rows {
		sums[traceKey{r.Reason, r.Location, r.Stage}] += r.Count
	}
	// Admit new keys in a stable order (most drops first, then by name)
	// so which keys win the last places does not depend on map order.
	var fresh []traceKey
	for k := range sums {
		if !c.admitted[k] {
			fresh = append(fresh, k)
		}
	}
	sort.Slice(fresh, func(i, j int) bool {
		a, b := fresh[i], fresh[j]
		if sums[a] != sums[b] {
			return sums[a] > sums[b]
		}
		if a.reason != b.reason {
			return a.reason < b.reason
		}
		if a.location != b.location {
			return a.location < b.location
		}
		return a.stage < b.stage
	})
	for _, k := range fresh {
		if len(c.admitted) >= c.maxSeries {
			break
		}
		c.admitted[k] = true
	}
	var other uint64
	for k, n := range sums {
		if !c.admitted[k] {
			other += n
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), k.reason, k.location, string(k.stage))
	}
	ch <- prometheus.MustNewConstMetric(c.other, prometheus.CounterValue, float64(other))
	noise := map[string]uint64{}
	for _, r := range snap.Noise {
		noise[r.Reason] += r.Count
	}
	for reason, n := range noise {
		ch <- prometheus.MustNewConstMetric(c.noise, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.unattributed, prometheus.CounterValue, float64(snap.Unattributed))
	return nil
}
