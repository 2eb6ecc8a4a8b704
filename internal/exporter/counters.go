package exporter

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
)

// countersCollector exports every value of a counters snapshot: event
// counts as counters, levels (queue lengths, table sizes) as gauges. The
// label set is the counter's identity plus its stage, so a dashboard can
// sum by stage without knowing kernel names.
type countersCollector struct {
	e                   *Exporter
	counter, gauge      *prometheus.Desc
	unavailable, sample *prometheus.Desc
}

func newCountersCollector(e *Exporter) *countersCollector {
	labels := []string{"source", "object", "field", "stage", "scope"}
	return &countersCollector{
		e: e,
		counter: prometheus.NewDesc(namespace+"_kernel_events_total",
			"A kernel event counter as netdrop reads it (source: where; object: interface, CPU, qdisc or rule; field: the kernel's name; stage: the packet path stage it is evidence for, empty for context; scope: host for host-wide values, netns otherwise).",
			labels, nil),
		gauge: prometheus.NewDesc(namespace+"_kernel_level",
			"A kernel level (queue length, table size) as netdrop reads it; labels as for netdrop_kernel_events_total.",
			labels, nil),
		unavailable: prometheus.NewDesc(namespace+"_source_unavailable",
			"1 for each counter source that could not be read in this scrape (see the exporter's debug log or netdrop counters for why).",
			[]string{"source"}, nil),
		sample: prometheus.NewDesc(namespace+"_counters_snapshot_timestamp_seconds",
			"When the counters of this scrape were read, in Unix seconds.", nil, nil),
	}
}

func (c *countersCollector) name() string { return "counters" }

func (c *countersCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.counter
	ch <- c.gauge
	ch <- c.unavailable
	ch <- c.sample
}

func (c *countersCollector) update(ctx context.Context, s *scrape, ch chan<- prometheus.Metric) error {
	o := c.e.opts
	// The same snapshot diagnose takes, host-wide merge included, so
	// the findings of a scrape are those of `netdrop diagnose`.
	snap, err := counters.CollectIn(ctx, o.Netns, counters.Options{FS: o.FS, Sources: o.Sources})
	if err != nil {
		return err
	}
	snap.Time = o.Now()
	s.snap = snap
	seen := make(map[counters.Key]bool, len(snap.Counters))
	for _, k := range snap.Counters {
		if seen[k.Key()] {
			// Two sources must not report one identity; if one ever
			// does, the first wins rather than failing the scrape.
			continue
		}
		seen[k.Key()] = true
		scope := "netns"
		if k.HostWide {
			scope = "host"
		}
		desc, typ := c.counter, prometheus.CounterValue
		if k.Gauge {
			desc, typ = c.gauge, prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(desc, typ, float64(k.Value), string(k.Source), k.Object, k.Field, string(k.Stage), scope)
	}
	srcs := map[counters.SourceID]bool{}
	for _, u := range snap.Unavailable {
		o.Logger.Debug("source unavailable", "source", u.Where(), "reason", u.Reason)
		if srcs[u.Source] {
			continue
		}
		srcs[u.Source] = true
		ch <- prometheus.MustNewConstMetric(c.unavailable, prometheus.GaugeValue, 1, string(u.Source))
	}
	ch <- prometheus.MustNewConstMetric(c.sample, prometheus.GaugeValue, float64(snap.Time.UnixNano())/1e9)
	if len(snap.Counters) == 0 {
		return errors.New("no counter could be read")
	}
	return nil
}
