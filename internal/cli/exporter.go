package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/exporter"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/internal/safefile"
	"github.com/spf13/cobra"
)

func init() { register(newExporterCmd) }

func newExporterCmd(e *env) *cobra.Command {
	var (
		listen    string
		opts      exporter.Options
		trace     bool
		flows     bool
		debug     bool
		readyFile string
		expects   []string
		otlp      exporter.OTLPOptions
		otlpHdrs  []string

		ifInclude, ifExclude, irqInclude, irqExclude string
		webConfig                                    string
	)
	cmd := &cobra.Command{
		Use:   "exporter",
		Short: "Serve drop counters, drops per stage and findings as Prometheus metrics",
		Long: `exporter serves Prometheus metrics on --listen (loopback by default).
Every family has one unit; counters end in _total; rates are rate()'s job.

  netdrop_stage_drops_total{stage}     drops per stage of the packet path, as
      netdrop diagnose attributes them between two scrapes (use rate())
  netdrop_findings{stage,severity}     the findings of the last scrape interval
  netdrop_findings_expected{stage}     of those, the ones --expect declared intended
  netdrop_network_*, netdrop_softnet_*, netdrop_qdisc_*, netdrop_nf_conntrack_*,
  netdrop_sockstat_*, netdrop_cpu_seconds_total, netdrop_interrupts_total
      kernel counters under node_exporter's names (node_X is netdrop_X)
  netdrop_kernel_drops_total / _events_total / _near_drops_total
      the other kernel counters by unit, labelled with source, object, field
      and stage
  netdrop_tcp_destination_*, netdrop_tcp_listen_*   TIME_WAIT per destination and
      accept queue fill, cut to the --top busiest (bounded cardinality)
  netdrop_trace_drops_total{reason,location,stage}   with --trace, drops seen at
      the kfree_skb tracepoint (eBPF), bounded to 200 series
  netdrop_netns_stage_drops_total{netns,pod_namespace,pod,container,stage},
  netdrop_netns_findings{…,stage,severity}   with --all-netns, per network
      namespace of the host (within --max-series)
  netdrop_scrape_collector_success / _duration_seconds   per collector
  netdrop_exporter_series_dropped_total   kernel series cut by --max-series

Per-interface series pass --include-interfaces / --exclude-interfaces and
/proc/interrupts lines --include-irqs / --exclude-irqs (unanchored regular
expressions, as node_exporter's device-include); the diagnosis behind
netdrop_stage_drops_total still sees everything. docs/metrics.md lists every
family and its node_exporter counterpart.

With --otlp the same metrics are also pushed to an OpenTelemetry collector
every --otlp-interval, gathered from the registry /metrics serves: names,
labels and values are those of a scrape, mapped as OpenTelemetry maps
Prometheus data (counters are cumulative monotonic sums, labels
attributes). Each push is a reading like a scrape: stage totals stay exact
whoever reads, findings cover the time since the last reading. The protocol is OTLP over
HTTP (protobuf, gzip), which OpenTelemetry collectors and Prometheus'
OTLP receiver (/api/v1/otlp/v1/metrics) accept; the port defaults to 4318
and the path to /v1/metrics. The resource carries service.name=netdrop and
service.instance.id=the host name. A collector that is down or refuses is
logged (the first failure, then every tenth) and /metrics keeps serving.

A host between two probe ends (a router, a node on the path) answers
netdrop probe client --via http://HOST:PORT on /probe/drops: its stage
counters read afresh for the probe's window and, with --trace, the tracer's
rows; with --trace --trace-flows they are cut to the probe's own 5-tuple, so
the client counts the hop's share of its lost frames exactly.

deploy/ holds alerting rules, a Grafana dashboard and a Kubernetes DaemonSet.`,
		Example: `  netdrop exporter
  netdrop exporter --listen 0.0.0.0:9469     # reachable from the network: your decision
  netdrop exporter --listen 0.0.0.0:9469 --web.config.file /etc/netdrop/web.yml   # TLS and basic auth
  netdrop exporter --netns web --top 20
  netdrop exporter --trace --trace-flows      # a hop that probe client --via can ask
  netdrop exporter --otlp http://otel-collector:4318 --otlp-header "Authorization=Bearer $TOKEN"
  netdrop exporter --otlp http://prometheus:9090/api/v1/otlp/v1/metrics --otlp-interval 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Top <= 0 {
				return fmt.Errorf("--top must be positive (got %d)", opts.Top)
			}
			if opts.MaxSeries <= 0 {
				return fmt.Errorf("--max-series must be positive (got %d)", opts.MaxSeries)
			}
			for _, r := range []struct {
				flag, expr string
				dst        **regexp.Regexp
			}{
				{"--include-interfaces", ifInclude, &opts.Interfaces.Include},
				{"--exclude-interfaces", ifExclude, &opts.Interfaces.Exclude},
				{"--include-irqs", irqInclude, &opts.IRQs.Include},
				{"--exclude-irqs", irqExclude, &opts.IRQs.Exclude},
			} {
				if r.expr == "" {
					continue
				}
				re, err := regexp.Compile(r.expr)
				if err != nil {
					return fmt.Errorf("%s: %w", r.flag, err)
				}
				*r.dst = re
			}
			var err error
			if opts.Expect, err = diagnose.ParseExpects(expects); err != nil {
				return err
			}
			if !opts.Netns.IsCurrent() {
				if _, err := netns.ID(opts.Netns.Spec()); err != nil {
					return err
				}
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			opts.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			agentMemoryLimit()
			if trace {
				// One tracer for the exporter's life, filtered in the
				// kernel to the watched namespace.
				tr, err := droptrace.Start(cmd.Context(), droptrace.Options{Netns: opts.Netns.Spec(), Flows: flows})
				if err != nil {
					return fmt.Errorf("--trace: %w", err)
				}
				defer tr.Close()
				opts.Tracer = tr
			}
			reg, _, err := exporter.NewRegistry(opts)
			if err != nil {
				return err
			}
			// The exporter's own health, as every exporter reports it.
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			if otlp.URL != "" {
				if otlp.Headers, err = exporter.ParseOTLPHeaders(otlpHdrs); err != nil {
					return err
				}
				otlp.Logger, otlp.Netns = opts.Logger, opts.Netns.Spec()
				p, err := exporter.NewPusher(reg, otlp)
				if err != nil {
					return err
				}
				go p.Run(cmd.Context())
			}
			return serveMetrics(cmd.Context(), e, listen, webConfig, readyFile, exporter.WithHop(exporter.Handler(reg, opts), opts, flows), opts.Logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", exporter.DefaultListen, "address to serve /metrics on")
	f.VarP(&opts.Netns, "netns", "n", "network namespace to watch: NAME (/run/netns), PATH, or pid:N")
	f.IntVar(&opts.Top, "top", exporter.DefaultTop, "destinations and listeners that get their own series")
	f.BoolVar(&opts.NoSockets, "no-sockets", false, "skip the socket view (TIME_WAIT per destination, listen queues)")
	f.BoolVar(&trace, "trace", false, "add the in-kernel drop aggregates by reason, location and stage (eBPF; needs CAP_BPF, CAP_PERFMON and CAP_SYSLOG, the last to read kernel addresses in /proc/kallsyms)")
	f.BoolVar(&opts.AllNetns, "all-netns", false, "add netdrop_netns_stage_drops_total and netdrop_netns_findings for every network namespace of the host, labelled netns, pod_namespace, pod, container (pods through --cri-socket)")
	f.StringArrayVar(&opts.CRISockets, "cri-socket", netnsmap.DefaultCRISockets, "CRI runtime socket to ask for pods with --all-netns (repeatable; those absent are skipped)")
	f.BoolVar(&flows, "trace-flows", false, "with --trace, keep 5-tuples too, so that netdrop probe client --via this exporter counts its own flow's drops here exactly (a map update more per drop)")
	f.BoolVar(&debug, "debug", false, "log missing sources and failing collectors")
	f.StringArrayVar(&expects, "expect", nil, "STAGE[:MATCH]: drops declared intended, as in netdrop diagnose --expect (repeatable)")
	f.StringVar(&otlp.URL, "otlp", "", "also push the same metrics to this OpenTelemetry collector (OTLP over HTTP): http(s)://HOST[:4318][/v1/metrics]")
	f.DurationVar(&otlp.Interval, "otlp-interval", exporter.DefaultOTLPInterval, "how often --otlp pushes")
	f.StringArrayVar(&otlpHdrs, "otlp-header", nil, "NAME=VALUE sent with every --otlp push, e.g. an API key (repeatable)")
	f.StringVar(&ifInclude, "include-interfaces", "", "REGEXP: export only interfaces whose name matches (link, qdisc and driver statistics)")
	f.StringVar(&ifExclude, "exclude-interfaces", "", "REGEXP: leave out interfaces whose name matches (e.g. '^veth' on a node with many pods)")
	f.StringVar(&irqInclude, "include-irqs", "", "REGEXP: export only /proc/interrupts lines whose IRQ and devices (\"41 virtio3-rx\") match")
	f.StringVar(&irqExclude, "exclude-irqs", "", "REGEXP: leave out /proc/interrupts lines whose IRQ and devices match")
	f.IntVar(&opts.MaxSeries, "max-series", exporter.DefaultMaxSeries, "most kernel counter series per scrape; beyond it per-object series are cut and counted in netdrop_exporter_series_dropped_total")
	f.StringVar(&webConfig, "web.config.file", "", "FILE: TLS and basic auth for the listener, in the web configuration format of Prometheus' exporters (exporter-toolkit)")
	f.StringVar(&readyFile, "ready-file", "", "write the listening address to this file once serving (for scripts and tests)")
	return cmd
}

// agentMemory is the exporter's soft memory limit unless GOMEMLIMIT sets one:
// an agent on every node should stay small, and the Go default lets the heap
// double before collecting, so the garbage of starting the tracer (parsing
// kernel BTF and kallsyms) would otherwise set the process's peak. The
// collector works harder only near the limit; it is soft, so a larger
// host's scrape is never refused memory.
const agentMemory = 24 << 20

func agentMemoryLimit() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(agentMemory)
	}
}

// serveMetrics listens, serves until ctx ends, then shuts down gracefully.
func serveMetrics(ctx context.Context, e *env, addr, webConfig, readyFile string, h http.Handler, log *slog.Logger) error {
	if err := exporter.CheckWebConfig(webConfig); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
			log.Warn("serving metrics beyond loopback: anyone who reaches this address sees this host's drop evidence", "addr", ln.Addr().String())
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- exporter.Serve(ln, srv, webConfig, log) }()
	if webConfig == "" {
		log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	} else {
		log.Info("serving metrics", "addr", ln.Addr().String(), "web_config", webConfig)
	}
	if readyFile != "" {
		if err := writeReadyFile(readyFile, []byte(ln.Addr().String()+"\n")); err != nil {
			srv.Close()
			return err
		}
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	return nil
}

// writeReadyFile writes b to path through a temporary file and a rename, so
// a script polling for the file never reads it half written, and a symlink
// another user planted at path (in /tmp, say) is replaced, never followed.
func writeReadyFile(path string, b []byte) error {
	if err := safefile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}
