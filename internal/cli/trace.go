package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/netdrop/netdrop/droptrace"
	"github.com/spf13/cobra"
)

func init() { register(newTraceCmd) }

// traceFlags are the trace command's flags, turned into droptrace.Options.
type traceFlags struct {
	opts      droptrace.Options
	duration  time.Duration
	interval  time.Duration
	host      string
	asJSON    bool
	readyFile string
	reasons   bool
}

func newTraceCmd(e *env) *cobra.Command {
	var tf traceFlags
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Count packet drops per kernel function and drop reason with eBPF (a dropwatch for modern kernels)",
		Long: `trace attaches an eBPF program to the kernel's skb:kfree_skb tracepoint and
counts every dropped packet in the kernel, per drop reason, freeing function
(symbol+offset), network namespace, interface and protocol. Each interval it
prints a table sorted by count, with the stage of the packet path each row
means, and a summary at the end.

Frees that are not loss (queue purges when a socket closes, multicast that is
not for this host) are shown apart as noise and not counted as drops.

--stacks adds the kernel stacks of each row (sampled: the first drops of a
row, then one in 1024, with their sample counts), --flows the top 5-tuples, and
--events streams one line per drop; events the ring buffer could not take are
counted and reported, never lost silently.

It needs root, or CAP_BPF, CAP_PERFMON and CAP_SYSLOG (the last to read kernel
addresses in /proc/kallsyms, unless kernel.perf_event_paranoid <= 1 and
kernel.kptr_restrict=0). Nothing is pinned: when trace
exits, however it exits, the kernel removes the program.`,
		Example: `  netdrop trace                               # every drop on the host, each second
  netdrop trace --netns web --proto udp --port 53 --flows
  netdrop trace --reason NETFILTER_DROP --stacks --duration 10s
  netdrop trace --events --json | jq .
  netdrop trace --reasons                     # every drop reason of this kernel: stage or class, meaning`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tf.reasons {
				return runTraceReasons(e, tf)
			}
			return runTrace(cmd.Context(), e, tf)
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&tf.duration, "duration", "d", 0, "stop after this long (default: until interrupted)")
	f.DurationVarP(&tf.interval, "interval", "i", time.Second, "print a table this often (0: only the summary)")
	f.StringVarP(&tf.opts.Netns, "netns", "n", "", "count only drops in this network namespace: NAME (/run/netns), PATH, or pid:N")
	f.StringVar(&tf.opts.Proto, "proto", "", "count only this transport: udp, tcp or icmp")
	f.Uint16Var(&tf.opts.Port, "port", 0, "count only TCP/UDP drops from or to this port")
	f.StringVar(&tf.host, "host", "", "count only drops from or to this IPv4/IPv6 address")
	f.StringVar(&tf.opts.Reason, "reason", "", "count only this drop reason (e.g. NETFILTER_DROP)")
	f.BoolVar(&tf.opts.Stacks, "stacks", false, "sample kernel stacks and print the most frequent of each row")
	f.BoolVar(&tf.opts.Flows, "flows", false, "print the top 5-tuples of each row")
	f.IntVar(&tf.opts.FlowsPerRow, "top-flows", 5, "how many flows per row --flows prints")
	f.BoolVar(&tf.opts.Events, "events", false, "print one line per drop (through a ring buffer; losses are counted)")
	f.BoolVar(&tf.asJSON, "json", false, "print JSON lines: one object per interval, per event, and a summary")
	f.BoolVar(&tf.reasons, "reasons", false, "list every drop reason of the running kernel with its stage (or class outside the path) and meaning, and exit")
	f.StringVar(&tf.opts.Attach, "attach", "auto", "attach as tp_btf or tracepoint (auto: tp_btf when the kernel has BTF)")
	f.StringVar(&tf.readyFile, "ready-file", "", "create this file once the program is attached (for scripts and tests)")
	_ = f.MarkHidden("attach")
	_ = f.MarkHidden("ready-file")
	return cmd
}

func runTrace(ctx context.Context, e *env, tf traceFlags) error {
	if tf.duration < 0 {
		return errors.New("--duration must not be negative")
	}
	if err := checkInterval("--interval", tf.interval, true); err != nil {
		return err
	}
	if tf.host != "" {
		a, err := netip.ParseAddr(tf.host)
		if err != nil {
			return fmt.Errorf("--host %q: want an IPv4 or IPv6 address: %w", tf.host, err)
		}
		tf.opts.Host = a
	}
	tr, err := droptrace.Start(ctx, tf.opts)
	if err != nil {
		return err
	}
	defer tr.Close()
	start, err := tr.Snapshot()
	if err != nil {
		return err
	}
	info := tr.Info()
	if tf.readyFile != "" {
		if err := writeReadyFile(tf.readyFile, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
			return err
		}
	}
	if !tf.asJSON {
		src := info.ReasonSource
		if src == "" {
			src = "none (kernel before 5.17)"
		}
		fmt.Fprintf(e.stderr, "tracing skb:kfree_skb (%s, reasons from %s); Ctrl-C to stop\n", info.Attach, src)
	}

	// out serializes writes from the event goroutine and the interval loop.
	var mu sync.Mutex
	out := func(fn func(w io.Writer) error) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(e.stdout)
	}
	var evDone chan struct{}
	if ch := tr.Events(); ch != nil {
		evDone = make(chan struct{})
		go func() {
			defer close(evDone)
			for ev := range ch {
				_ = out(func(w io.Writer) error { return writeTraceEvent(w, ev, tf.asJSON) })
			}
		}()
	}

	var stop <-chan time.Time
	if tf.duration > 0 {
		timer := time.NewTimer(tf.duration)
		defer timer.Stop()
		stop = timer.C
	}
	var tick <-chan time.Time
	if tf.interval > 0 {
		ticker := time.NewTicker(tf.interval)
		defer ticker.Stop()
		tick = ticker.C
	}
	prev := start
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-stop:
			break loop
		case <-tick:
			cur, err := tr.Snapshot()
			if err != nil {
				return err
			}
			d := droptrace.TopFlows(droptrace.Delta(prev, cur), tf.opts.FlowsPerRow)
			span := cur.Time.Sub(prev.Time)
			prev = cur
			if err := out(func(w io.Writer) error { return writeTraceTable(w, "interval", span, d, tf) }); err != nil {
				return err
			}
		}
	}
	end, err := tr.Snapshot()
	if err != nil {
		return err
	}
	if err := tr.Close(); err != nil {
		return fmt.Errorf("detaching: %w", err)
	}
	if evDone != nil {
		<-evDone
	}
	sum := droptrace.TopFlows(droptrace.Delta(start, end), tf.opts.FlowsPerRow)
	return out(func(w io.Writer) error {
		return writeTraceTable(w, "summary", end.Time.Sub(start.Time), sum, tf)
	})
}

// reasonJSON is one reason in `trace --reasons --json`.
type reasonJSON struct {
	Value uint32 `json:"value"`
	droptrace.ReasonInfo
}

// runTraceReasons lists the running kernel's drop reasons with their place
// on the packet path, so a user can see where any reason a tool prints
// belongs and that none is lumped silently.
func runTraceReasons(e *env, tf traceFlags) error {
	rs, err := droptrace.KernelReasons(tf.opts.Tracefs)
	if err != nil {
		return err
	}
	list := droptrace.ReasonTable(rs)
	if tf.asJSON {
		out := struct {
			Source  string       `json:"source"`
			Reasons []reasonJSON `json:"reasons"`
		}{Source: rs.Source, Reasons: make([]reasonJSON, 0, len(list))}
		for _, ri := range list {
			v, _ := rs.Code(ri.Name)
			out.Reasons = append(out.Reasons, reasonJSON{Value: v, ReasonInfo: ri})
		}
		return writeTraceJSON(e.stdout, out)
	}
	return writeReasons(e.stdout, rs, list)
}

// writeReasons prints the reason table: value, name, place, meaning. A
// place guessed from the name (a reason newer than netdrop) is marked.
func writeReasons(w io.Writer, rs *droptrace.Reasons, list []droptrace.ReasonInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VALUE\tREASON\tSTAGE/CLASS\tMEANING")
	fallback := 0
	for _, ri := range list {
		v, _ := rs.Code(ri.Name)
		place := string(ri.Stage)
		if ri.Class != droptrace.ClassStage {
			place = "(" + string(ri.Class) + ")"
		}
		if ri.ByLocation {
			place += " by location"
		}
		if ri.Fallback {
			place += " *"
			fallback++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v, ri.Name, place, ri.Meaning)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d reasons from %s.", len(list), rs.Source)
	if fallback > 0 {
		fmt.Fprintf(w, " * %d not in netdrop's table (a newer kernel or a subsystem): placed by name prefix, conservatively.", fallback)
	}
	_, err := fmt.Fprintln(w, " (noise): not loss; (policy), (other): drops outside the stages, shown with their reason; by location: the freeing function refines the stage.")
	return err
}

// traceJSON is one JSON line of trace output.
type traceJSON struct {
	Type       string          `json:"type"` // interval, summary
	Time       time.Time       `json:"time"`
	Seconds    float64         `json:"seconds,omitempty"`
	Drops      uint64          `json:"drops"`
	Rows       []droptrace.Row `json:"rows"`
	Noise      []droptrace.Row `json:"noise,omitempty"`
	LostEvents uint64          `json:"lost_events"`
	// Unattributed drops were counted while the aggregation map was full.
	Unattributed uint64 `json:"unattributed"`
}

func writeTraceTable(w io.Writer, kind string, span time.Duration, s droptrace.Snapshot, tf traceFlags) error {
	if tf.asJSON {
		rows := s.Rows
		if rows == nil {
			rows = []droptrace.Row{}
		}
		return writeTraceJSON(w, traceJSON{Type: kind, Time: s.Time, Seconds: span.Seconds(), Drops: s.Drops(),
			Rows: rows, Noise: s.Noise, LostEvents: s.LostEvents, Unattributed: s.Unattributed})
	}
	if kind == "interval" && len(s.Rows) == 0 && len(s.Noise) == 0 && s.LostEvents == 0 && s.Unattributed == 0 {
		return nil // quiet intervals print nothing
	}
	head := s.Time.Format("15:04:05")
	if kind == "summary" {
		head = fmt.Sprintf("summary over %s", span.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%s  drops: %d", head, s.Drops())
	if n := sumRows(s.Noise); n > 0 {
		fmt.Fprintf(w, "  (noise, not counted: %d)", n)
	}
	if tf.opts.Events {
		fmt.Fprintf(w, "  lost events: %d", s.LostEvents)
	}
	if s.Unattributed > 0 {
		fmt.Fprintf(w, "  unattributed (map full): %d", s.Unattributed)
	}
	fmt.Fprintln(w)
	if len(s.Rows) > 0 {
		writeRows(w, s.Rows, tf)
	} else if kind == "summary" {
		fmt.Fprintln(w, "  no drops")
	}
	if len(s.Noise) > 0 {
		fmt.Fprintln(w, "  noise (frees that are not loss):")
		writeRows(w, s.Noise, tf)
	}
	return nil
}

// maxTextStacks bounds the stacks printed per row in text output.
const maxTextStacks = 3

// writeRows prints rows as an aligned table; each row's flows and stack
// follow it as indented lines that do not take part in the alignment, so a
// long stack frame does not widen every column.
func writeRows(w io.Writer, rows []droptrace.Row, tf traceFlags) {
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DROPS\tREASON\tLOCATION\tSTAGE\tNETNS\tIFACE\tPROTO")
	for _, r := range rows {
		st := string(r.Stage)
		if st == "" {
			st = "-"
		}
		if r.AltStage != "" {
			st += "|" + string(r.AltStage)
		}
		proto := r.Protocol
		if r.L4 != "" {
			proto += "/" + r.L4
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Count, dash(r.Reason), r.Location, st, r.Netns, ifLabel(r), dash(proto))
	}
	tw.Flush()
	lines := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	fmt.Fprintln(w, lines[0])
	for i, r := range rows {
		fmt.Fprintln(w, strings.TrimRight(lines[i+1], " "))
		if tf.opts.Flows {
			for _, f := range r.Flows {
				fmt.Fprintf(w, "        %8d  %s %s -> %s", f.Count, f.Proto, f.Src, f.Dst)
				if f.ICMP != "" {
					fmt.Fprintf(w, " %s", f.ICMP)
				}
				fmt.Fprintln(w)
			}
		}
		if tf.opts.Stacks {
			for i, st := range r.Stacks {
				if i == maxTextStacks {
					fmt.Fprintf(w, "        (%d more stacks; --json lists all)\n", len(r.Stacks)-i)
					break
				}
				fmt.Fprintf(w, "        stack, %d samples:\n", st.Samples)
				for _, fr := range st.Frames {
					fmt.Fprintf(w, "          %s\n", fr)
				}
			}
		}
	}
}

func writeTraceEvent(w io.Writer, ev droptrace.Event, asJSON bool) error {
	if asJSON {
		return writeTraceJSON(w, struct {
			Type string `json:"type"`
			droptrace.Event
		}{"event", ev})
	}
	r := ev.Row
	var b strings.Builder
	fmt.Fprintf(&b, "%s cpu%d %s %s", ev.Time.Format("15:04:05.000000"), ev.CPU, dash(r.Reason), r.Location)
	if r.Stage != "" {
		fmt.Fprintf(&b, " stage=%s", r.Stage)
	}
	if r.Noise {
		b.WriteString(" noise")
	}
	fmt.Fprintf(&b, " netns=%d if=%s", r.Netns, ifLabel(r))
	if f := ev.Flow; f != nil {
		fmt.Fprintf(&b, " %s %s -> %s", f.Proto, f.Src, f.Dst)
		if f.ICMP != "" {
			b.WriteString(" " + f.ICMP)
		}
	} else if r.Protocol != "" {
		b.WriteString(" " + r.Protocol)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

func ifLabel(r droptrace.Row) string {
	switch {
	case r.Ifname != "":
		return r.Ifname
	case r.Ifindex != 0:
		return "if" + strconv.Itoa(int(r.Ifindex))
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sumRows(rows []droptrace.Row) uint64 {
	var n uint64
	for _, r := range rows {
		n += r.Count
	}
	return n
}

// writeTraceJSON prints v as one line of JSON (JSON lines output), so a
// long-running trace can be piped into jq line by line.
func writeTraceJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
