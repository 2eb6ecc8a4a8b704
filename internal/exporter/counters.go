package exporter

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
)

// DefaultMaxSeries bounds the kernel counter series of one scrape. A host
// has a few hundred (one per MIB field, a few dozen per interface and per
// CPU); the bound is there for the node with thousands of veths or nft
// rules, where an unbounded exporter would grow Prometheus's memory with
// every pod.
const DefaultMaxSeries = 20000

// Filter selects names by regular expressions, as node_exporter's
// --collector.netdev.device-include and -exclude do: a name is kept when
// it matches Include (if set) and does not match Exclude (if set).
// Matching is unanchored, like theirs.
type Filter struct {
	Include, Exclude *regexp.Regexp
}

// Keep reports whether name passes the filter.
func (f Filter) Keep(name string) bool {
	if f.Include != nil && !f.Include.MatchString(name) {
		return false
	}
	return f.Exclude == nil || !f.Exclude.MatchString(name)
}

// countersCollector exports every value of a counters snapshot in the
// families of model.go. Per-interface and per-IRQ series pass the
// Interfaces and IRQs filters; what is left is cut to MaxSeries, and the
// cut is counted in netdrop_exporter_series_dropped_total.
type countersCollector struct {
	e     *Exporter
	model *metricModel
	// cut is how many series the cap has left out, over all scrapes.
	cut uint64

	unavailable, sample, dropped *prometheus.Desc
}

func newCountersCollector(e *Exporter) *countersCollector {
	return &countersCollector{
		e:     e,
		model: newModel(),
		unavailable: prometheus.NewDesc(namespace+"_source_unavailable",
			"1 for each counter source that could not be read in this scrape (see the exporter's debug log or netdrop counters for why).",
			[]string{"source"}, nil),
		sample: prometheus.NewDesc(namespace+"_counters_snapshot_timestamp_seconds",
			"When the counters of this scrape were read, in Unix seconds.", nil, nil),
		dropped: prometheus.NewDesc(namespace+"_exporter_series_dropped_total",
			"Kernel counter series left out because a scrape had more than --max-series of them (per-object series go first; raise the cap or narrow --include-interfaces / --include-irqs).", nil, nil),
	}
}

func (c *countersCollector) name() string { return "counters" }

func (c *countersCollector) describe(ch chan<- *prometheus.Desc) {
	c.model.describe(ch)
	ch <- c.unavailable
	ch <- c.sample
	ch <- c.dropped
}

// keptSeries is one sample on its way out, with its identity for dedup.
type keptSeries struct {
	point
	id string
	// perObject is true for series that name an interface, CPU, IRQ,
	// qdisc or rule: they are the ones that grow, and the first cut.
	perObject bool
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

	out := c.place(snap.Counters)
	limit := o.MaxSeries
	if limit <= 0 {
		limit = DefaultMaxSeries
	}
	if len(out) > limit {
		// Cut deterministically: namespace-wide series stay, per-object
		// ones go in a stable order, so the same series survive from
		// one scrape to the next.
		slices.SortStableFunc(out, func(a, b keptSeries) int {
			if a.perObject != b.perObject {
				if a.perObject {
					return 1
				}
				return -1
			}
			return strings.Compare(a.id, b.id)
		})
		c.cut += uint64(len(out) - limit)
		o.Logger.Debug("series cap reached", "series", len(out), "max", limit)
		out = out[:limit]
	}
	for _, sr := range out {
		ch <- prometheus.MustNewConstMetric(sr.fam.desc, sr.fam.typ, sr.value, sr.labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(c.cut))

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

// place puts every counter the filters keep in its family. Interrupts are
// summed over CPUs and /proc/net/dev's receive drop is derived per device;
// any other identity seen twice keeps its first value (two sources must not
// report one identity, and if one ever does the scrape goes on).
func (c *countersCollector) place(cs []counters.Counter) []keptSeries {
	out := make([]keptSeries, 0, len(cs))
	index := make(map[string]int, len(cs))
	var rxDrop []string // devices in order
	rxDropSum := map[string]float64{}
	var id strings.Builder
	for _, k := range cs {
		if !c.keep(k) {
			continue
		}
		sm, ok := c.model.place(k)
		if !ok {
			continue
		}
		if k.Source == counters.NetlinkLinkStats && (k.Field == "rx_dropped" || k.Field == "rx_missed_errors") {
			if _, seen := rxDropSum[k.Object]; !seen {
				rxDrop = append(rxDrop, k.Object)
			}
			rxDropSum[k.Object] += float64(k.Value)
		}
		id.Reset()
		id.WriteString(sm.fam.desc.String())
		for _, l := range sm.labels {
			id.WriteByte(0)
			id.WriteString(l)
		}
		key := id.String()
		if i, dup := index[key]; dup {
			if k.Source == counters.ProcInterrupts {
				out[i].value += sm.value
			}
			continue
		}
		index[key] = len(out)
		out = append(out, keptSeries{point: sm, id: key, perObject: k.Object != ""})
	}
	if f := c.model.fams[famReceiveDrop]; f != nil {
		for _, dev := range rxDrop {
			out = append(out, keptSeries{point: point{f, []string{dev}, rxDropSum[dev]}, id: famReceiveDrop + "\x00" + dev, perObject: true})
		}
	}
	return out
}

// keep applies the interface and IRQ filters to a counter.
func (c *countersCollector) keep(k counters.Counter) bool {
	o := c.e.opts
	switch k.Source {
	case counters.NetlinkLinkStats, counters.EthtoolStats:
		return o.Interfaces.Keep(k.Object)
	case counters.NetlinkQdisc:
		dev, _, _ := qdiscParts(k.Object)
		return o.Interfaces.Keep(dev)
	case counters.ProcInterrupts:
		return o.IRQs.Keep(k.Object)
	}
	return true
}
