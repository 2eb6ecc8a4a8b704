package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/exporter"
	"github.com/netdrop/netdrop/probe"
	"github.com/spf13/cobra"
)

func init() { register(newProbeCmd) }

// probeFlags are the flags the three probe subcommands share.
type probeFlags struct {
	proto       string
	listen      string
	to          string
	rate        string
	size        int
	duration    time.Duration
	count       uint64
	batch       int
	rcvbuf      int
	sndbuf      int
	readerDelay time.Duration
	reorder     time.Duration
	idleTimeout time.Duration
	maxConns    int
	clockSynced bool
	gso         bool
	gro         bool
	once        bool
	asJSON      bool
	netns       counters.Target
	trace       string
	via         []string
}

// inNetns runs fn with its sockets created in the namespace of --netns (on
// a thread that entered it), or in the current one.
func (f *probeFlags) inNetns(fn func() error) error {
	if f.netns.IsCurrent() {
		return fn()
	}
	return f.netns.Do(fn)
}

// collect reads the counters of the --netns namespace (or the current one).
func (f *probeFlags) collect(ctx context.Context) *counters.Snapshot {
	s, err := counters.CollectIn(ctx, f.netns, counters.Options{})
	if err != nil {
		// The namespace went away during the run.
		s = counters.Unreadable(f.netns, err)
	}
	return s
}

// startTracer starts the drop tracer for the probe's flow in the --netns
// namespace, filtered in the kernel to UDP and port (0: any port). With
// --trace auto a tracer that cannot start is no error: the run falls back
// to counters and the note says why.
func (f *probeFlags) startTracer(ctx context.Context, port uint16) (probe.Tracer, func(), string, error) {
	if f.proto != "udp" {
		return nil, func() {}, "", nil
	}
	if f.trace == "off" {
		return nil, func() {}, "not traced (--trace off): counters only, which other traffic also moves", nil
	}
	t, err := droptrace.Start(ctx, probe.TraceOptions(f.netns.Spec(), port))
	if err != nil {
		if f.trace == "on" {
			return nil, nil, "", fmt.Errorf("--trace on: %w", err)
		}
		return nil, func() {}, fmt.Sprintf("not traced (%v): counters only, which other traffic also moves", err), nil
	}
	return t, func() { t.Close() }, "", nil
}

func addTraceFlag(cmd *cobra.Command, f *probeFlags) {
	cmd.Flags().StringVar(&f.trace, "trace", "auto", "count this probe's own lost frames with the drop tracer (eBPF, its 5-tuple): auto, on or off; without it, counters")
}

func newProbeCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Send framed traffic, count exactly what arrived, and say where the rest was lost",
		Long: `probe sends numbered, timestamped, CRC-protected frames and accounts for every
one at the receiver: received, lost (final only after a reorder window),
reordered (RFC 4737), duplicates, late, corrupted, invalid, one-way latency
when both ends share a clock, IPDV and RFC 3550 jitter otherwise. The lost
frames are attributed to stages of the packet path from the probe socket's own
drop counter and the kernel counters that moved during the run.

Where lost frames went: with --trace auto (the default) each end runs the
drop tracer (eBPF at skb:kfree_skb; root, or CAP_BPF, CAP_PERFMON and CAP_SYSLOG) on the
probe's own 5-tuple in its namespace, so every frame the kernel freed there is
counted at its stage and reason, exactly; the server's count comes back in its
report. The client then names each place: lost = sender + receiver + hops +
not on any of them. Without the tracer an end falls back to counters and says
so. With --via URL (repeatable) the client reads the netdrop exporters of the
hosts in between (netdrop exporter --trace --trace-flows) before and after
the run, and names the hop and stage that lost the rest.

Exit code: 0 nothing lost or damaged, 1 frames lost or corrupted, 2 error.`,
		Example: `  netdrop probe server --listen :4790
  netdrop probe client --to 10.0.0.2:4790 --rate 100000 --duration 10s
  netdrop probe client --to 10.0.2.2:4790 --via http://10.0.1.1:9469   # ask the router's exporter too
  netdrop probe local --rate max --size 64 --duration 5s
  netdrop probe local --rate 200000 --rcvbuf 65536 --reader-delay 1ms   # a slow reader`,
	}
	cmd.AddCommand(newProbeServerCmd(e), newProbeClientCmd(e), newProbeLocalCmd(e))
	return cmd
}

func addServerFlags(cmd *cobra.Command, f *probeFlags) {
	fl := cmd.Flags()
	fl.IntVar(&f.rcvbuf, "rcvbuf", 0, "receive buffer of the probe socket in bytes (0: system default)")
	fl.DurationVar(&f.readerDelay, "reader-delay", 0, "sleep after every batch read: make the receiver slow on purpose")
	fl.DurationVar(&f.reorder, "reorder-window", 200*time.Millisecond, "how long a missing frame may still arrive before it counts as lost")
	fl.BoolVar(&f.gro, "gro", false, "receive coalesced datagrams with UDP_GRO (faster; socket drops then count buffers, not frames)")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", 15*time.Second, "tcp: close a connection whose run is silent this long (a run slower than one frame per this long needs more)")
	fl.IntVar(&f.maxConns, "max-conns", 64, "tcp: connections served at once; more are refused and counted")
}

func addClientFlags(cmd *cobra.Command, f *probeFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.rate, "rate", "10000", "frames per second, or max")
	fl.IntVar(&f.size, "size", 64, "UDP payload bytes per datagram, frame header included (like iperf3 -l)")
	fl.DurationVarP(&f.duration, "duration", "d", 5*time.Second, "how long to send")
	fl.Uint64Var(&f.count, "count", 0, "stop after this many frames (0: no limit)")
	fl.IntVar(&f.batch, "batch", 0, "datagrams per sendmmsg call (default 64, 512 with --gso)")
	fl.BoolVar(&f.gso, "gso", false, "send 64 datagrams per buffer with UDP GSO (UDP_SEGMENT)")
	fl.IntVar(&f.sndbuf, "sndbuf", 0, "send buffer of the probe socket in bytes (0: system default)")
}

func addCommonFlags(cmd *cobra.Command, f *probeFlags) {
	cmd.Flags().StringVar(&f.proto, "proto", "udp", "transport: udp, or tcp (no loss by design: latency, corruption, resynchronisation)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the final report as one JSON object")
	cmd.Flags().VarP(&f.netns, "netns", "n", "run in this network namespace: NAME (/run/netns), PATH, or pid:N")
}

func (f *probeFlags) check() error {
	if f.proto != "udp" && f.proto != "tcp" {
		return fmt.Errorf("--proto %q: want udp or tcp", f.proto)
	}
	return nil
}

func (f *probeFlags) serverConfig(e *env) probe.ServerConfig {
	cfg := probe.ServerConfig{
		ReorderWindow: f.reorder,
		ReaderDelay:   f.readerDelay,
		RcvBuf:        f.rcvbuf,
		GRO:           f.gro,
		IdleTimeout:   f.idleTimeout,
		MaxConns:      f.maxConns,
		Collect:       f.collect,
	}
	if f.clockSynced {
		cfg.Clock = probe.ClockWall
	}
	if !f.asJSON {
		cfg.OnInterval = func(iv probe.Interval) { printInterval(e.stdout, iv) }
	}
	// Traffic outside any run goes to stderr, rate-limited by the server:
	// as a line, or as one JSON object {"stray": …} with --json.
	cfg.OnStray = func(st probe.Stray) {
		if f.asJSON {
			json.NewEncoder(e.stderr).Encode(struct {
				Stray probe.Stray `json:"stray"`
			}{st})
			return
		}
		fmt.Fprintf(e.stderr, "probe server: %s\n", strayLine(st))
	}
	return cfg
}

// strayLine says what reached the server outside any run, totals since it
// started.
func strayLine(st probe.Stray) string {
	var b strings.Builder
	b.WriteString("outside any run so far:")
	if st.Datagrams+st.SocketDrops > 0 || st.Conns+st.TimedOut+st.Refused == 0 {
		fmt.Fprintf(&b, " %d datagrams (%d bytes) that started no run", st.Datagrams, st.Bytes)
		if st.SocketDrops > 0 {
			fmt.Fprintf(&b, " and %d the socket dropped", st.SocketDrops)
		}
	}
	if st.Conns+st.TimedOut+st.Refused > 0 {
		fmt.Fprintf(&b, " %d tcp connections without a run (%d bytes), %d closed at a deadline, %d refused at the connection limit",
			st.Conns, st.ConnBytes, st.TimedOut, st.Refused)
	}
	if st.LastFrom != "" {
		fmt.Fprintf(&b, "; latest from %s", st.LastFrom)
	}
	return b.String()
}

func (f *probeFlags) clientConfig(e *env, progress bool) (probe.ClientConfig, error) {
	cfg := probe.ClientConfig{Size: f.size, Duration: f.duration, Count: f.count, Batch: f.batch, SndBuf: f.sndbuf, GSO: f.gso}
	if f.rate != "max" {
		r, err := strconv.ParseFloat(f.rate, 64)
		if err != nil || r <= 0 {
			return cfg, fmt.Errorf("--rate %q: want frames per second or max", f.rate)
		}
		cfg.Rate = r
	}
	cfg.ReportTimeout = f.reorder + 5*time.Second
	if progress && !f.asJSON {
		cfg.OnInterval = func(s probe.SendStats) {
			fmt.Fprintf(e.stdout, "%6.1fs  sent %9d  %10.0f/s  send errors %d\n", s.Elapsed.Seconds(), s.Sent, s.Rate, s.SendErrors)
		}
	}
	return cfg, nil
}

func newProbeServerCmd(e *env) *cobra.Command {
	var f probeFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Receive probe runs and report each one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			cfg := f.serverConfig(e)
			cfg.Once = f.once
			worst := 0
			cfg.OnReport = func(r probe.Report) {
				if f.asJSON {
					writeJSON(e.stdout, r)
				} else {
					printReport(e.stdout, r)
				}
				worst = max(worst, reportCode(r))
			}
			cfg.Host = probe.HostOf(f.netns.Spec())
			var (
				serve  func(context.Context) error
				closer func() error
				addr   string
				udp    *probe.UDPServer
			)
			err := f.inNetns(func() error {
				if f.proto == "tcp" {
					srv, err := probe.ListenTCP(f.listen, cfg)
					if err != nil {
						return err
					}
					closer, serve, addr = srv.Close, srv.Serve, srv.Addr().String()
					return nil
				}
				srv, err := probe.ListenUDP(f.listen, cfg)
				if err != nil {
					return err
				}
				udp = srv
				closer, serve, addr = srv.Close, srv.Serve, srv.Addr().String()
				return nil
			})
			if err != nil {
				return err
			}
			defer closer()
			if udp != nil {
				t, stop, note, err := f.startTracer(cmd.Context(), uint16(udp.Addr().Port))
				if err != nil {
					return err
				}
				defer stop()
				udp.SetTracer(t, note)
			}
			if !f.asJSON {
				fmt.Fprintf(e.stderr, "probe server listening on %s %s\n", f.proto, addr)
			}
			if err := serve(cmd.Context()); err != nil {
				return err
			}
			if worst != 0 {
				return exitError{worst}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.listen, "listen", "l", ":4790", "address to listen on")
	cmd.Flags().BoolVar(&f.clockSynced, "clock-synced", false, "the hosts' wall clocks are synchronised: report one-way latency")
	cmd.Flags().BoolVar(&f.once, "once", false, "exit after the first run")
	addTraceFlag(cmd, &f)
	addServerFlags(cmd, &f)
	addCommonFlags(cmd, &f)
	return cmd
}

func newProbeClientCmd(e *env) *cobra.Command {
	var f probeFlags
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Send one probe run to a probe server and print its report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if f.to == "" {
				return fmt.Errorf("--to ADDR is required (the probe server's host:port)")
			}
			cfg, err := f.clientConfig(e, true)
			if err != nil {
				return err
			}
			// The server reads its host's counters; this side reads the
			// sender's, for loss on the transmit path.
			cfg.Collect = f.collect
			cfg.Host = probe.HostOf(f.netns.Spec())
			for _, u := range f.via {
				cfg.Via = append(cfg.Via, exporter.HopClient{URL: u})
			}
			if f.proto == "tcp" && len(f.via) > 0 {
				return fmt.Errorf("--via reads the hops for a udp probe (tcp recovers what it loses)")
			}
			var (
				rep  probe.Report
				conn interface{ Close() error }
			)
			if f.proto == "tcp" {
				var c *net.TCPConn
				if err := f.inNetns(func() (err error) { c, err = probe.DialTCP(f.to); return err }); err != nil {
					return err
				}
				conn = c
				defer conn.Close()
				if rep, err = probe.RunTCP(cmd.Context(), c, cfg); err != nil {
					return err
				}
			} else {
				var c *net.UDPConn
				if err := f.inNetns(func() (err error) { c, err = probe.DialUDP(f.to); return err }); err != nil {
					return err
				}
				conn = c
				defer conn.Close()
				t, stop, note, err := f.startTracer(cmd.Context(), uint16(c.RemoteAddr().(*net.UDPAddr).Port))
				if err != nil {
					return err
				}
				defer stop()
				cfg.Tracer, cfg.TraceUnavailable = t, note
				if rep, err = probe.RunUDP(cmd.Context(), c, cfg); err != nil {
					return err
				}
			}
			return finishProbe(e, f, rep)
		},
	}
	cmd.Flags().StringVar(&f.to, "to", "", "probe server address, host:port")
	cmd.Flags().StringArrayVar(&f.via, "via", nil, "URL of the netdrop exporter of a host in between (repeatable): which hop and stage lost what neither end explains")
	addTraceFlag(cmd, &f)
	cmd.Flags().DurationVar(&f.reorder, "reorder-window", 200*time.Millisecond, "the server's reorder window (how long to wait for its report)")
	addClientFlags(cmd, &f)
	addCommonFlags(cmd, &f)
	return cmd
}

func newProbeLocalCmd(e *env) *cobra.Command {
	var f probeFlags
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run a probe server and client on this host over loopback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			ccfg, err := f.clientConfig(e, false)
			if err != nil {
				return err
			}
			run := probe.RunLocal
			if f.proto == "tcp" {
				run = probe.RunLocalTCP
			}
			// One namespace holds both ends: one tracer, the receiver's,
			// on any port (the receiver's is chosen when it listens).
			scfg := f.serverConfig(e)
			t, stop, note, err := f.startTracer(cmd.Context(), 0)
			if err != nil {
				return err
			}
			defer stop()
			scfg.Tracer, scfg.TraceUnavailable = t, note
			// Both ends' sockets are created in the namespace; the run
			// itself may then go on on any thread.
			var rep probe.Report
			err = f.inNetns(func() (err error) {
				rep, err = run(cmd.Context(), f.listen, scfg, ccfg)
				return err
			})
			if err != nil {
				return err
			}
			return finishProbe(e, f, rep)
		},
	}
	cmd.Flags().StringVarP(&f.listen, "listen", "l", "127.0.0.1:0", "address the local receiver listens on")
	addTraceFlag(cmd, &f)
	addServerFlags(cmd, &f)
	addClientFlags(cmd, &f)
	addCommonFlags(cmd, &f)
	return cmd
}

func finishProbe(e *env, f probeFlags, rep probe.Report) error {
	var err error
	if f.asJSON {
		err = writeJSON(e.stdout, rep)
	} else {
		printReport(e.stdout, rep)
	}
	if err != nil {
		return err
	}
	if c := reportCode(rep); c != ExitOK {
		return exitError{c}
	}
	return nil
}

// reportCode: frames lost or damaged is a finding.
func reportCode(r probe.Report) int {
	if r.Lost > 0 || r.Corrupted > 0 {
		return ExitFindings
	}
	return ExitOK
}

func printInterval(w io.Writer, iv probe.Interval) {
	fmt.Fprintf(w, "%6.1fs  recv %9d %10.0f/s  lost %7d  reord %5d  dup %5d  corrupt %d  invalid %d  sockdrops %d  | total recv %d + lost %d + in-flight %d = %d",
		iv.Elapsed.Seconds(), iv.Received, iv.RecvRate, iv.Lost, iv.Reordered, iv.Duplicates, iv.Corrupted, iv.Invalid, iv.SocketDrops,
		iv.TotalReceived, iv.TotalLost, iv.InFlight, iv.Expected)
	if iv.LatencyMax > 0 {
		fmt.Fprintf(w, "  lat p50 %v p99 %v max %v", round(iv.LatencyP50), round(iv.LatencyP99), round(iv.LatencyMax))
	} else {
		fmt.Fprintf(w, "  jitter %v", round(time.Duration(iv.JitterNs)))
	}
	fmt.Fprintln(w)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

func printReport(w io.Writer, r probe.Report) {
	fmt.Fprintf(w, "\nprobe %s, sender %08x, %v, clock: %s\n", r.Proto, r.Sender, round(r.Duration), r.Clock)
	if r.Send != nil {
		fmt.Fprintf(w, "  sent        %12d  %12.0f/s  (%d send errors)\n", r.Sent, r.Send.Rate, r.Send.SendErrors)
	} else {
		fmt.Fprintf(w, "  sent        %12d\n", r.Sent)
	}
	fmt.Fprintf(w, "  received    %12d  %12.0f/s\n", r.Received, r.RecvRate)
	fmt.Fprintf(w, "  lost        %12d  %11.4f%%  (final after the reorder window)\n", r.Lost, r.LossPercent)
	fmt.Fprintf(w, "  reordered   %12d  max extent %d\n", r.Reordered, r.MaxReorderExtent)
	fmt.Fprintf(w, "  duplicates  %12d\n", r.Duplicates)
	fmt.Fprintf(w, "  late        %12d  (arrived after being counted lost)\n", r.Late)
	fmt.Fprintf(w, "  corrupted   %12d  (CRC mismatch)\n", r.Corrupted)
	fmt.Fprintf(w, "  invalid     %12d  (not a frame; also %d of other senders, %d out of sequence window)\n", r.Invalid, r.Foreign, r.OutOfWindow)
	fmt.Fprintf(w, "  socket drops%12d  (the probe socket's receive queue was full)\n", r.SocketDrops)
	if r.HelloMissed+r.FinMissed > 0 {
		fmt.Fprintf(w, "  control     %d hello and %d fin copies never arrived (not counted as data loss)\n", r.HelloMissed, r.FinMissed)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "  latency     p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n", round(l.P50), round(l.P90), round(l.P99), round(l.P999), round(l.Max))
		if r.NegativeLatency > 0 {
			fmt.Fprintf(w, "              %d frames arrived before they were sent: the clocks are not synchronised\n", r.NegativeLatency)
		}
	}
	fmt.Fprintf(w, "  jitter      %v (RFC 3550)", round(time.Duration(r.JitterNs)))
	if d := r.IPDV; d != nil {
		fmt.Fprintf(w, "  |IPDV| p50 %v  p99 %v  max %v", round(d.P50), round(d.P99), round(d.Max))
	}
	fmt.Fprintln(w)
	printWhere(w, r.Attribution)
	if r.Stray != nil {
		fmt.Fprintf(w, "  server      %s\n", strayLine(*r.Stray))
	}
}

// printWhere says where the lost frames went: the sum by place first, then
// one line per stage with its evidence, then how each place was watched.
func printWhere(w io.Writer, a probe.Attribution) {
	snd, rcv, hops, un := a.Split()
	rest := "not on either host"
	if hops > 0 || hasHops(a) {
		rest = "not on the hosts asked"
	}
	fmt.Fprintf(w, "  where lost  %d = sender %d + receiver %d", a.Lost, snd, rcv)
	if hops > 0 || hasHops(a) {
		fmt.Fprintf(w, " + hops %d", hops)
	}
	fmt.Fprintf(w, " + %s %d\n", rest, un)
	for _, s := range a.Stages {
		place := cmp.Or(s.Side, "receiver")
		if s.Hop != "" {
			place = "hop " + s.Hop
		}
		qual := "exact"
		if !s.Exact {
			qual = "up to; shared with other traffic"
		}
		var ev []string
		for _, x := range s.Evidence {
			ev = append(ev, evidenceText(x))
		}
		if s.MoreEvidence > 0 {
			ev = append(ev, fmt.Sprintf("%d more", s.MoreEvidence))
		}
		fmt.Fprintf(w, "    %-9s %-14s %9d  %s: %s\n", place, cmp.Or(string(s.Stage), "(no stage)"), s.Frames, qual, strings.Join(ev, "; "))
	}
	fmt.Fprintf(w, "    %-24s %9d", rest, un)
	if un > 0 {
		fmt.Fprint(w, "  (between the hosts, or a stage without a counter or trace)")
	}
	fmt.Fprintln(w)
	for _, p := range a.Places {
		name := p.Side
		if p.Hop != "" {
			name = "hop " + p.Hop
		}
		how := "counters"
		switch {
		case p.Traced && p.Flow:
			how = "traced, the probe's own 5-tuple"
		case p.Traced:
			how = "traced, every flow"
		case p.Note != "":
			how = ""
		}
		if p.Note != "" {
			how = strings.TrimPrefix(how+"; "+p.Note, "; ")
		}
		fmt.Fprintf(w, "  watched   %s: %s\n", name, how)
	}
}

func hasHops(a probe.Attribution) bool {
	for _, p := range a.Places {
		if p.Side == "hop" {
			return true
		}
	}
	return false
}

// evidenceText is one piece of evidence as a person reads it.
func evidenceText(x probe.Evidence) string {
	switch x.Source {
	case probe.SocketDropsSource:
		return fmt.Sprintf("drops of the probe socket %d", x.Delta)
	case probe.TraceSource:
		return fmt.Sprintf("traced %s at %s %d", x.Field, x.Object, x.Delta)
	case probe.TraceAllSource:
		return fmt.Sprintf("traced (every flow) %s at %s %d", x.Field, x.Object, x.Delta)
	}
	name := x.Field
	if x.Object != "" {
		name = x.Object + " " + x.Field
	}
	return fmt.Sprintf("%s +%d", name, x.Delta)
}
