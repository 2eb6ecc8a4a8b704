package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netdrop/netdrop/internal/bench"
	"github.com/spf13/cobra"
)

func init() { register(newBenchCmd) }

// newBenchCmd is the parent of the benchmark commands; transport is its
// first subcommand (others, such as a tracer benchmark, attach here).
func newBenchCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure this host: transports and zero-copy choices",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchTransportCmd(e), newBenchShmPeerCmd())
	return cmd
}

func newBenchTransportCmd(e *env) *cobra.Command {
	var (
		sizes      string
		duration   time.Duration
		asJSON     bool
		plot       string
		transports []string
	)
	cmd := &cobra.Command{
		Use:   "transport",
		Short: "Compare read/write, sendfile, splice, MSG_ZEROCOPY, TCP, Unix sockets and shared memory on this host",
		Long: `transport measures, for each message size, every same-host transport:

  tcp           read+write over TCP loopback
  unix          read+write over a Unix stream socket
  sendfile      sendfile(2) from a file to a TCP socket
  proxy-copy    TCP -> read/write relay -> TCP (what a naive proxy does)
  proxy-splice  TCP -> splice socket->pipe->socket -> TCP
  zerocopy      send(MSG_ZEROCOPY) over TCP loopback, with completions read
  shmring       the shared-memory ring of package shmring, peer in another process
  shmring-futex the same with spinning off: its latency is the futex wake-up cost

For each it reports throughput (GB/s and messages/s over a one-way stream),
ping-pong latency one way (round trip / 2, p50 and p99), and CPU seconds per
GB moved (both ends). On loopback the kernel copies every MSG_ZEROCOPY send;
the report shows the share of completions it copied rather than pretend.

Each measurement runs for --duration: the whole run takes about
2 x transports x sizes x duration.`,
		Example: `  netdrop bench transport
  netdrop bench transport --sizes 64,4K,64K --duration 1s --plot bench.svg
  netdrop bench transport --transport tcp,shmring --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sz, err := bench.ParseSizes(sizes)
			if err != nil {
				return fmt.Errorf("--sizes: %w", err)
			}
			if duration <= 0 {
				return fmt.Errorf("--duration must be positive (got %s)", duration)
			}
			opts := bench.Options{Sizes: sz, Duration: duration, Transports: transports, ShmPeer: shmPeerCommand}
			// A live progress line only on a terminal: redirected
			// stderr gets no carriage returns or escape codes.
			if tty := e.progress(); tty != nil {
				opts.Progress = func(done, total int, what string) {
					if done == total {
						fmt.Fprintf(tty, "\r\033[K")
						return
					}
					fmt.Fprintf(tty, "\r\033[K[%d/%d] %s", done+1, total, what)
				}
			}
			r, err := bench.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if plot != "" {
				if err := writePlotFile(plot, r); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(e.stdout, r)
			}
			return renderBench(e.stdout, r, plot)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sizes, "sizes", "64,1K,16K,64K,1M", "message sizes, comma-separated, K/M suffixes")
	f.DurationVar(&duration, "duration", 500*time.Millisecond, "time per measurement (each transport, size, and throughput or latency)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&plot, "plot", "", "write an SVG plot of throughput and latency against size to this file")
	f.StringSliceVar(&transports, "transport", nil, "measure only these transports ("+strings.Join(bench.Transports, ",")+")")
	return cmd
}

// shmPeerCommand runs this same binary as the shmring peer process.
func shmPeerCommand(toPeer, fromPeer string, po bench.PeerOptions) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, "bench", "shmring-peer", "--cpu", strconv.Itoa(po.CPU), "--spin", po.Spin.String(), toPeer, fromPeer)
}

// newBenchShmPeerCmd is the hidden command bench transport starts as the
// other end of the shmring measurement.
func newBenchShmPeerCmd() *cobra.Command {
	cpu := -1
	var spin time.Duration
	cmd := &cobra.Command{
		Use:    "shmring-peer TO FROM",
		Short:  "internal: the peer process of bench transport's shmring measurement",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return bench.ServeShmPeer(cmd.Context(), args[0], args[1], bench.PeerOptions{ReportCPU: true, CPU: cpu, Spin: spin})
		},
	}
	cmd.Flags().IntVar(&cpu, "cpu", -1, "pin the serving thread to this CPU for latency phases")
	cmd.Flags().DurationVar(&spin, "spin", 0, "shmring spin before sleeping (negative: sleep at once)")
	return cmd
}

func writePlotFile(path string, r *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := bench.WritePlot(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

func renderBench(w io.Writer, r *bench.Report, plot string) error {
	fmt.Fprintf(w, "netdrop bench transport: kernel %s, %d CPUs, %s per measurement, %.0fs in all\n\n",
		r.Kernel, r.CPUs, r.Duration, r.Elapsed.Seconds())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transport\tsize\tGB/s\tmsg/s\tp50 µs\tp99 µs\tCPU s/GB\t note\t")
	for _, res := range r.Results {
		if res.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t error: %s\t\n", res.Transport, bench.FormatSize(res.Size), res.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%.2f\t%.2f\t%.2f\t %s\t\n", res.Transport, bench.FormatSize(res.Size),
			res.GBps, humanRate(res.MsgsPerSec), res.P50, res.P99, res.CPUPerGB, res.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.BreakEven) > 0 {
		fmt.Fprintln(w, "\nbreak-even against tcp:")
		for _, be := range r.BreakEven {
			fmt.Fprintf(w, "  %s: %s overtakes %s above ≈%s (between %s and %s)\n", be.Metric, be.Faster, be.Slower,
				bench.ApproxSize(be.Size), bench.FormatSize(be.Lo), bench.FormatSize(be.Hi))
		}
	}
	if len(r.ShmVsTCP) > 0 {
		fmt.Fprintln(w, "\nshmring against tcp loopback, same run:")
		for _, q := range r.ShmVsTCP {
			fmt.Fprintf(w, "  %s: p50 one-way latency %s lower, %s the messages/s\n", bench.FormatSize(q.Size), times(q.Latency), times(q.Throughput))
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	if plot != "" {
		fmt.Fprintf(w, "\nplot written to %s\n", plot)
	}
	return nil
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// times prints a ratio: one decimal below 10, none above.
func times(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.0f×", r)
}
