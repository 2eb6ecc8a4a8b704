package exporter

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/sockets"
)

// socketsCollector exports the socket view: counts per state, TIME_WAIT by
// side and per destination, and the accept queues of the listeners. The
// dump is streamed by package sockets, so a scrape's memory does not grow
// with the socket count; series per destination and per listener are cut to
// the top N (fullest first), with totals so the cut is visible.
type socketsCollector struct {
	e *Exporter

	count, timeWait, ports                  *prometheus.Desc
	destTW, destEstab, destShare, destTotal *prometheus.Desc
	lQueue, lBacklog, lFill, lDrops, lTotal *prometheus.Desc
	lFillMax, pressure                      *prometheus.Desc
}

func newSocketsCollector(e *Exporter) *socketsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &socketsCollector{
		e:         e,
		count:     d("sockets", "Sockets by family, protocol and state.", "family", "protocol", "state"),
		timeWait:  d("tcp_time_wait_sockets", "TCP sockets in TIME_WAIT by which side closed first (server: this host accepted and closed first; client: this host connected and closed first).", "side"),
		ports:     d("ephemeral_ports", "Size of the ephemeral port range (net.ipv4.ip_local_port_range): the ports one source address can hold toward one destination."),
		destTW:    d("tcp_destination_time_wait_sockets", "TCP client sockets in TIME_WAIT toward one destination (top N destinations by share of the port range).", "destination"),
		destEstab: d("tcp_destination_established_sockets", "Established TCP client sockets toward one destination (top N destinations).", "destination"),
		destShare: d("tcp_destination_port_use_ratio", "Share of the ephemeral port range the busiest source address uses toward one destination (top N); connect() fails with EADDRNOTAVAIL at 1.", "destination"),
		destTotal: d("tcp_destinations", "Destinations TCP clients of this host connect to, before the top N cut."),
		lQueue:    d("tcp_listen_queue", "Connections waiting in a listener's accept queue (top N listeners by fill).", "listen"),
		lBacklog:  d("tcp_listen_backlog", "A listener's accept queue limit: its listen() backlog capped by net.core.somaxconn (top N listeners).", "listen"),
		lFill:     d("tcp_listen_queue_fill_ratio", "A listener's accept queue over its limit, 0 to 1 and above when full (top N listeners).", "listen"),
		lDrops:    d("tcp_listen_drops_total", "Handshakes a listener dropped because its SYN or accept queue overflowed (sk_drops; top N listeners).", "listen"),
		lTotal:    d("tcp_listeners", "TCP listeners, before the top N cut."),
		lFillMax:  d("tcp_listen_queue_fill_max_ratio", "The fullest accept queue of all listeners, 0 to 1."),
		pressure:  d("sockets_under_pressure", "Sockets that dropped packets or whose receive queue is near its buffer."),
	}
}

func (c *socketsCollector) name() string { return "sockets" }

func (c *socketsCollector) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.count, c.timeWait, c.ports, c.destTW, c.destEstab, c.destShare, c.destTotal,
		c.lQueue, c.lBacklog, c.lFill, c.lDrops, c.lTotal, c.lFillMax, c.pressure} {
		ch <- d
	}
}

func (c *socketsCollector) update(ctx context.Context, _ *scrape, ch chan<- prometheus.Metric) error {
	o := c.e.opts
	sum, err := o.Summarize(ctx, sockets.Options{Netns: o.Netns, ProcRoot: o.FS.Proc, Top: o.Top})
	if err != nil {
		return err
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, sc := range sum.Counts {
		g(c.count, float64(sc.Count), sc.Family, sc.Protocol, strings.ToLower(sc.State.String()))
	}
	g(c.timeWait, float64(sum.TimeWait.Server), "server")
	g(c.timeWait, float64(sum.TimeWait.Client), "client")
	g(c.ports, float64(sum.Settings.PortRangeSize()))
	seen := map[string]bool{}
	for _, d := range sum.Destinations {
		dst := d.Remote.String()
		if len(seen) >= o.Top || seen[dst] {
			continue
		}
		seen[dst] = true
		g(c.destTW, float64(d.TimeWait), dst)
		g(c.destEstab, float64(d.Established), dst)
		g(c.destShare, d.Share, dst)
	}
	g(c.destTotal, float64(sum.DestinationsTotal))
	// SO_REUSEPORT listeners share an address: fold them into one series
	// (queues, limits and drops add up; the fill is the fullest's).
	type agg struct {
		queued, backlog, drops float64
		fill                   float64
	}
	var order []string
	byAddr := map[string]*agg{}
	fillMax := 0.0
	for _, l := range sum.Listeners {
		if l.Fill > fillMax {
			fillMax = l.Fill
		}
		addr := l.Local.String()
		a, ok := byAddr[addr]
		if !ok {
			if len(order) >= o.Top {
				continue
			}
			a = &agg{}
			byAddr[addr] = a
			order = append(order, addr)
		}
		a.queued += float64(l.Queued)
		a.backlog += float64(l.Backlog)
		a.drops += float64(l.Drops)
		a.fill = max(a.fill, l.Fill)
	}
	for _, addr := range order {
		a := byAddr[addr]
		g(c.lQueue, a.queued, addr)
		g(c.lBacklog, a.backlog, addr)
		g(c.lFill, a.fill, addr)
		ch <- prometheus.MustNewConstMetric(c.lDrops, prometheus.CounterValue, a.drops, addr)
	}
	g(c.lTotal, float64(sum.ListenersTotal))
	g(c.lFillMax, fillMax)
	g(c.pressure, float64(sum.PressureTotal))
	return nil
}
