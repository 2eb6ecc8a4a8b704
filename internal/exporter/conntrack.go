package exporter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// conntrackCollector exports how full the connection tracking table is, as
// node_exporter names it (node_nf_conntrack_entries and _limit; their ratio
// is a query, not a series).
// The count and the limit live under /proc/sys/net/netfilter, which shows
// the namespace of the thread that opens them (the count is per namespace,
// the limit host-wide but readable in each). Without nf_conntrack loaded
// the files do not exist: that is no failure, there is simply no table.
type conntrackCollector struct {
	e            *Exporter
	entries, max *prometheus.Desc
}

func newConntrackCollector(e *Exporter) *conntrackCollector {
	return &conntrackCollector{
		e: e,
		entries: prometheus.NewDesc(namespace+"_nf_conntrack_entries",
			"Connections tracked now (net.netfilter.nf_conntrack_count).", nil, nil),
		max: prometheus.NewDesc(namespace+"_nf_conntrack_entries_limit",
			"The size limit of the conntrack table (net.netfilter.nf_conntrack_max); new flows are dropped beyond it.", nil, nil),
	}
}

func (c *conntrackCollector) name() string { return "conntrack" }

func (c *conntrackCollector) describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.max
}

func (c *conntrackCollector) update(_ context.Context, _ *scrape, ch chan<- prometheus.Metric) error {
	fsys := c.e.opts.FS
	if fsys.Proc == "" {
		fsys.Proc = "/proc"
	}
	var count, max uint64
	var cerr, merr error
	err := c.e.inNetns(func() error {
		count, cerr = readUint(fsys.ProcPath("sys", "net", "netfilter", "nf_conntrack_count"))
		max, merr = readUint(fsys.ProcPath("sys", "net", "netfilter", "nf_conntrack_max"))
		return nil
	})
	if err != nil {
		return err
	}
	if errors.Is(cerr, fs.ErrNotExist) && errors.Is(merr, fs.ErrNotExist) {
		c.e.opts.Logger.Debug("conntrack not loaded: no nf_conntrack_count")
		return nil
	}
	if cerr != nil {
		return cerr
	}
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(count))
	if merr != nil {
		return merr
	}
	ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(max))
	return nil
}

// readUint reads a file holding one unsigned number, as sysctl files do.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number: %w", path, strings.TrimSpace(string(b)), err)
	}
	return v, nil
}
