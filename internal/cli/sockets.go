package cli

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/sockets"
	"github.com/spf13/cobra"
)

func init() { register(newSocketsCmd) }

func newSocketsCmd(e *env) *cobra.Command {
	var (
		opts      sockets.Options
		asJSON    bool
		states    string
		process   string
		port      uint16
		noProcess bool
		nf        nsmapFlags
	)
	cmd := &cobra.Command{
		Use:   "sockets",
		Short: "Socket states, TIME_WAIT and ephemeral ports per destination, listen queues, per-socket drops",
		Long: `sockets reads every TCP and UDP socket (IPv4 and IPv6) of this host or of one
network namespace through sock_diag netlink, and prints:

  1. the number of sockets per state and family, and TIME_WAIT split by who
     closed first: on a listening port this host is the server closing first;
  2. TCP client sockets and their TIME_WAIT per destination, with the share of
     the ephemeral port range (net.ipv4.ip_local_port_range) the busiest
     source address uses toward it (warning above 50%, critical above 90%),
     and whether net.ipv4.tcp_tw_reuse lets connect() reuse those ports;
  3. listeners with their accept queue (queued / backlog), drops and owner;
  4. sockets that dropped packets (SK_MEMINFO_DROPS, counted since the
     socket opened) or whose receive queue is near its buffer, with owner.

Owners come from one walk of /proc/*/fd after the dump (--no-processes skips
it). Exit code: 0, or 1 when a destination uses more than half of the
ephemeral range or a listener's accept queue is full; 2 on error.`,
		Example: `  netdrop sockets
  netdrop sockets --state time-wait --top 20
  netdrop sockets --port 443 --process nginx
  netdrop sockets --netns web --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if states != "" {
				set, err := sockets.ParseStates(states)
				if err != nil {
					return err
				}
				opts.States = set
			}
			if process != "" {
				f, err := sockets.ParseProcessFilter(process)
				if err != nil {
					return err
				}
				opts.Process = f
			}
			if opts.Top < 0 {
				return fmt.Errorf("--top must be 0 (all) or more (got %d)", opts.Top)
			}
			if opts.Top == 0 {
				opts.Top = -1 // all rows
			}
			opts.Port = port
			opts.Owners = !noProcess
			var owner *diagnose.Owner
			var err error
			if nf.selected() {
				if opts.Netns, owner, err = nf.find(cmd.Context()); err != nil {
					return err
				}
			}
			// The namespace's label walks /proc; it needs only the
			// target, so it runs beside the dump, which spends its time
			// in the kernel (5 ms of a 100k-socket summary's 90).
			var label chan *diagnose.Owner
			if owner == nil {
				label = make(chan *diagnose.Owner, 1)
				go func() { label <- nf.labelOf(cmd.Context(), opts.Netns) }()
			}
			sum, err := sockets.Summarize(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if label != nil {
				owner = <-label
			}
			if asJSON {
				err = writeJSON(e.stdout, socketsJSON{Summary: sum, Owner: owner})
			} else {
				if owner != nil {
					fmt.Fprintln(e.stdout, ownerLine(owner))
				}
				err = renderSockets(e.stdout, sum)
			}
			if err != nil {
				return err
			}
			if socketsAlarm(sum) {
				return exitError{ExitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.VarP(&opts.Netns, "netns", "n", "network namespace to read: NAME (/run/netns), PATH, or pid:N")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.IntVar(&opts.Top, "top", sockets.DefaultTop, "rows per table (0 for all)")
	f.StringVar(&states, "state", "", "only these states, comma-separated (estab, time-wait, listen, syn-recv, unconn, … or all, connected, bucket)")
	f.Uint16Var(&port, "port", 0, "only sockets whose local or remote port is this")
	f.StringVar(&process, "process", "", "only the sockets of this process: a pid or a command name")
	f.BoolVar(&noProcess, "no-processes", false, "do not walk /proc to name owning processes (faster on busy hosts)")
	nf.add(f, true)
	cmd.MarkFlagsMutuallyExclusive("netns", "pod", "container")
	return cmd
}

// socketsJSON is sockets --json: the summary, and the pod and containers of
// its namespace when one runs there.
type socketsJSON struct {
	*sockets.Summary
	Owner *diagnose.Owner `json:"owner,omitempty"`
}

// socketsAlarm says whether the state calls for exit code 1: ports running
// out toward a destination, or a listener dropping handshakes now.
func socketsAlarm(s *sockets.Summary) bool {
	for _, d := range s.Destinations {
		if d.Severity != "" {
			return true
		}
	}
	for _, l := range s.Listeners {
		if l.Full {
			return true
		}
	}
	return false
}

// renderSockets prints the summary as a few tight tables.
func renderSockets(w io.Writer, s *sockets.Summary) error {
	ns := s.Netns
	if ns == "" {
		ns = counters.CurrentNetns().String()
	}
	st := s.Settings
	reuse := map[int]string{0: "off", 1: "on", 2: "loopback only"}[st.TwReuse]
	fmt.Fprintf(w, "netns %s: %d sockets; ephemeral ports %d-%d (%d); tcp_tw_reuse=%d (%s); tcp_timestamps=%d\n",
		ns, s.Total, st.PortLow, st.PortHigh, st.PortRangeSize(), st.TwReuse, reuse, st.Timestamps)

	// States: one row per state, one column per protocol and family.
	cols := []struct{ proto, fam, title string }{
		{"tcp", "ipv4", "TCP/IPv4"}, {"tcp", "ipv6", "TCP/IPv6"}, {"udp", "ipv4", "UDP/IPv4"}, {"udp", "ipv6", "UDP/IPv6"},
	}
	type row struct {
		state sockets.State
		n     [4]int
	}
	var rows []*row
	byState := map[sockets.State]*row{}
	for _, c := range s.Counts {
		r := byState[c.State]
		if r == nil {
			r = &row{state: c.State}
			byState[c.State] = r
			rows = append(rows, r)
		}
		for i, col := range cols {
			if col.proto == c.Protocol && col.fam == c.Family {
				r.n[i] += c.Count
			}
		}
	}
	fmt.Fprintln(w)
	if len(rows) == 0 {
		fmt.Fprintln(w, "no sockets match")
	} else {
		tw := table(w)
		fmt.Fprint(tw, "STATE")
		for _, c := range cols {
			fmt.Fprintf(tw, "\t%s", c.title)
		}
		fmt.Fprintln(tw, "\t")
		sortRows(rows, func(r *row) sockets.State { return r.state })
		for _, r := range rows {
			fmt.Fprint(tw, r.state)
			for _, n := range r.n {
				fmt.Fprintf(tw, "\t%d", n)
			}
			fmt.Fprintln(tw, "\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if tw := s.TimeWait; tw.Total > 0 {
		fmt.Fprintf(w, "TIME-WAIT %d: %d as server (local listening port: this host closed first), %d as client\n",
			tw.Total, tw.Server, tw.Client)
		if len(s.ServerTimeWait) > 0 {
			var ps []string
			for _, p := range s.ServerTimeWait {
				ps = append(ps, fmt.Sprintf(":%d %d", p.Port, p.Count))
			}
			fmt.Fprintf(w, "  server TIME-WAIT by listening port: %s\n", strings.Join(ps, ", "))
		}
	}

	fmt.Fprintln(w)
	if len(s.Destinations) == 0 {
		fmt.Fprintln(w, "DESTINATIONS: no TCP client sockets")
	} else {
		fmt.Fprintf(w, "DESTINATIONS (TCP client sockets; ephemeral ports used by the busiest source, of %d)\n", st.PortRangeSize())
		tw := table(w)
		fmt.Fprintln(tw, "REMOTE\tSOCKETS\tTIME-WAIT\tESTAB\tSOURCES\tPORTS\tSHARE\tTW_REUSE\t")
		for _, d := range s.Destinations {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", d.Remote, d.Sockets, d.TimeWait, d.Established,
				d.Sources, d.EphemeralInUse, pct(d.Share), twReuseText(d.TwReuse), strings.ToUpper(d.Severity))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		more(w, len(s.Destinations), s.DestinationsTotal, "destinations")
	}

	fmt.Fprintln(w)
	if len(s.Listeners) == 0 {
		fmt.Fprintln(w, "LISTENERS: none")
	} else {
		fmt.Fprintln(w, "LISTENERS (accept queue: queued / backlog; drops since the listener opened)")
		tw := table(w)
		fmt.Fprintln(tw, "LOCAL\tQUEUED\tBACKLOG\tFILL\tDROPS\tPROCESS\t")
		for _, l := range s.Listeners {
			flag := ""
			if l.Full {
				flag = "FULL"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%s\n", l.Local, l.Queued, l.Backlog, pct(l.Fill), l.Drops, procs(l.Processes), flag)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		more(w, len(s.Listeners), s.ListenersTotal, "listeners")
	}

	fmt.Fprintln(w)
	if len(s.Pressure) == 0 {
		fmt.Fprintln(w, "DROPS / FULL RECEIVE QUEUES: none")
	} else {
		fmt.Fprintln(w, "DROPS / FULL RECEIVE QUEUES (drops since the socket opened; receive memory / SO_RCVBUF)")
		tw := table(w)
		fmt.Fprintln(tw, "PROTO\tLOCAL\tREMOTE\tSTATE\tDROPS\tRECV MEM\tFILL\tPROCESS\t")
		for _, p := range s.Pressure {
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%d\t%d/%d\t%s\t%s\t\n", p.Protocol, p.Family[3:], p.Local, remote(p.Remote),
				p.State, p.Drops, p.RmemAlloc, p.Rcvbuf, pct(p.Fill), procs(p.Processes))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		more(w, len(s.Pressure), s.PressureTotal, "sockets")
	}
	for _, u := range s.Unavailable {
		fmt.Fprintf(w, "unavailable: %s\n", u)
	}
	return nil
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func sortRows[T any](rows []T, key func(T) sockets.State) {
	for i := 1; i < len(rows); i++ {
		for j := i; j > 0 && key(rows[j]) < key(rows[j-1]); j-- {
			rows[j], rows[j-1] = rows[j-1], rows[j]
		}
	}
}

func pct(f float64) string {
	if f > 0 && f < 0.001 {
		return "<0.1%"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

func more(w io.Writer, shown, total int, what string) {
	if total > shown {
		fmt.Fprintf(w, "(%d of %d %s; --top 0 shows all)\n", shown, total, what)
	}
}

func remote(ap netip.AddrPort) string {
	if ap.Port() == 0 && ap.Addr().IsUnspecified() {
		return "*"
	}
	return ap.String()
}

func procs(ps []sockets.Process) string {
	if len(ps) == 0 {
		return "-"
	}
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func twReuseText(r sockets.TwReuse) string {
	switch r {
	case sockets.TwReuseActive:
		return "active"
	case sockets.TwReuseWouldHelp:
		return "would help (set 1)"
	case sockets.TwReuseNoTimestamps:
		return "needs tcp_timestamps"
	}
	return "-"
}
