package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/internal/buildinfo"
)

// buildInfoCollector serves netdrop_build_info: always 1, with the build's
// version, revision and toolchain as labels (the convention of Prometheus'
// own exporters), so a dashboard can join any series with the netdrop that
// produced it and see a fleet's versions at a glance.
func buildInfoCollector(in buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "build_info",
		Help:      "The netdrop build serving these metrics: module version, VCS revision, whether the tree was modified, Go version and platform; always 1.",
		ConstLabels: prometheus.Labels{
			"version":   in.Version,
			"revision":  in.Revision,
			"modified":  strconv.FormatBool(in.Modified),
			"goversion": in.GoVersion,
			"platform":  in.Platform,
		},
	})
	g.Set(1)
	return g
}
