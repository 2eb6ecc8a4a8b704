package cli

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/top"
)

func init() { register(newTopCmd) }

// errNotTerminal is top's answer when its output is a pipe or a file.
var errNotTerminal = errors.New("netdrop top draws a live screen and needs a terminal on stdout; to keep the intervals in a file use `netdrop record`, for one judged interval `netdrop diagnose`")

func newTopCmd(e *env) *cobra.Command {
	var (
		netns    counters.Target
		interval time.Duration
		opts     top.Options
		expects  []string
	)
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live full-screen view of the packet path: drops/s per stage, findings, reasons, sockets",
		Long: `top redraws, every interval, the receive and transmit path as stages with
their drops per second (coloured by the severity diagnose gives them), the
total since top started and a sparkline of the last minutes, and the findings
of the interval exactly as netdrop diagnose judges them. --trace adds the drop
reasons and kernel functions the skb:kfree_skb tracer counts; --sockets the
sockets that drop, with their processes.

Keys: up/down (k/j) select a stage, enter focuses it (its counters, evidence,
cause and fix), n selects the next stage that drops, p pauses, + and -
change the interval, ? shows help, q or ctrl+c quits. No mouse is needed, so
it works the same over SSH. The terminal is restored on every way out.

top needs a terminal; when stdout is not one it says so and exits 2 (use
netdrop record to keep intervals in a file, netdrop diagnose for one).`,
		Example: `  netdrop top
  netdrop top --netns web -i 2s
  netdrop top --trace --sockets`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkInterval("--interval", interval, false); err != nil {
				return err
			}
			if !isTerminal(e.stdout) {
				return errNotTerminal
			}
			var err error
			if opts.Expect, err = diagnose.ParseExpects(expects); err != nil {
				return err
			}
			opts.Netns = netns
			ctx := cmd.Context()
			s, err := top.NewSampler(ctx, opts)
			if err != nil {
				return err
			}
			defer s.Close()
			label := ""
			if !netns.IsCurrent() {
				label = netns.String()
			}
			m := top.New(ctx, top.Config{Next: s.Next, Interval: interval, Netns: label, Trace: opts.Trace, Sockets: opts.Sockets})
			err = top.Run(ctx, m, nil, e.stdout, e.colorOn(e.stdout))
			if ctx.Err() != nil {
				return ctx.Err() // Main turns a signal into 130 or 143
			}
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&interval, "interval", "i", time.Second, "time between two readings (+ and - change it while running)")
	f.VarP(&netns, "netns", "n", "network namespace to watch: NAME (/run/netns), PATH, or pid:N")
	f.BoolVar(&opts.Trace, "trace", false, "trace drops in the kernel with eBPF (skb:kfree_skb): top drop reasons and kernel functions")
	f.BoolVar(&opts.Sockets, "sockets", false, "read every socket through sock_diag each interval: the sockets that drop and their processes")
	f.StringArrayVar(&expects, "expect", nil, "STAGE[:MATCH]: drops declared intended, shown as info (as diagnose --expect)")
	return cmd
}
