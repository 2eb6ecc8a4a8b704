package cli

import (
	"fmt"
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/spf13/cobra"
)

func init() { register(newDiagnoseCmd) }

func newDiagnoseCmd(e *env) *cobra.Command {
	var (
		opts    diagnose.Options
		asJSON  bool
		expects []string
		from    fromFlags
		all     bool
		nf      nsmapFlags
	)
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Snapshot every drop counter twice, attribute the deltas to stages, give the fix",
		Long: `diagnose reads every drop-related counter of this host (or of one network
namespace) twice, --interval apart, and prints:

  1. the packet path, one RX and one TX line, with the drops/s at each stage;
  2. findings, most harmful first: stage, severity, packets lost, the counters
     that moved and where they were read, the likely cause, and the fix as
     commands computed from the current settings;
  3. what could not be read and why.

With --all-netns it diagnoses every network namespace of the host over one
interval (entered through a bind mount or a process in each) and ranks them
by harm: one block per namespace with findings, headed by its name, pod,
containers and processes; --pod NAMESPACE/NAME and --container ID diagnose
the namespace of one pod or container. Pods come from the node's CRI runtime
(containerd, CRI-O: --cri-socket), containers from each process's cgroup;
no Kubernetes API is needed.

With --from FILE it reads a recording made by netdrop record instead: the
stretch from --since to --until (the whole file by default), diagnosed as a
live run over the same stretch would have, without root or kernel access.

Exit code: 0 healthy, 1 a warning or critical finding, 2 usage or runtime error.`,
		Example: `  netdrop                          # diagnose this host over 5 seconds
  netdrop diagnose --interval 10s   # a longer sample for rare drops
  netdrop diagnose --once           # totals since boot, no waiting
  netdrop diagnose --netns web      # inside the namespace /run/netns/web
  netdrop diagnose --netns pid:1234 --json
  netdrop diagnose --all-netns      # every namespace: pods, containers, the host
  netdrop diagnose --pod shop/web-0 # the namespace of one Kubernetes pod
  netdrop diagnose --expect netfilter:9999 --expect no-socket   # drops declared intended
  netdrop diagnose --from drops.ndrec --since 14:02 --until 14:05   # a recorded stretch, offline`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := from.check(cmd, "interval", "netns", "once", "trace", "no-sockets", "all-netns", "pod", "container"); err != nil {
				return err
			}
			if !opts.Once && from.path == "" {
				if err := checkInterval("--interval", opts.Interval, false); err != nil {
					return err
				}
			}
			var err error
			if opts.Expect, err = diagnose.ParseExpects(expects); err != nil {
				return err
			}
			// Progress goes to stderr even with --json: stdout stays one
			// JSON object, and a person watching knows why it waits.
			opts.Progress = func(msg string) { fmt.Fprintln(e.stderr, msg) }
			if all {
				a, err := diagnoseAllNetns(cmd.Context(), opts, &nf)
				if err != nil {
					return err
				}
				if asJSON {
					err = writeJSON(e.stdout, a)
				} else {
					err = renderAllNetns(e.stdout, a, e.style(e.stdout))
				}
				if err != nil {
					return err
				}
				if sev, any := a.worst(); any && sev >= diagnose.Warning {
					return exitError{ExitFindings}
				}
				return nil
			}
			var owner *diagnose.Owner
			if nf.selected() {
				if opts.Netns, owner, err = nf.find(cmd.Context()); err != nil {
					return err
				}
			}
			var r *diagnose.Report
			if from.path != "" {
				// Offline: the recording is the only input; nothing
				// here reads the kernel.
				h, sp, err := from.span(e.stderr)
				if err != nil {
					return err
				}
				r = diagnoseRecorded(h, sp, opts.Expect)
				if !asJSON {
					fmt.Fprintf(e.stdout, "recording %s: host %s, kernel %s, %s to %s (%d readings)\n\n", from.path, h.Host, h.Kernel,
						sp.First.Time.UTC().Format("2006-01-02 15:04:05"), sp.Last.Time.UTC().Format("15:04:05 UTC"), sp.Intervals)
				}
			} else if r, err = diagnose.Run(cmd.Context(), opts); err != nil {
				return err
			}
			if owner != nil {
				r.SetOwner(owner)
				if !asJSON {
					fmt.Fprintln(e.stdout, ownerLine(owner))
				}
			}
			if asJSON {
				err = writeJSON(e.stdout, r)
			} else {
				err = report.DiagnosisStyled(e.stdout, r, e.style(e.stdout))
			}
			if err != nil {
				return err
			}
			if sev, any := r.Worst(); any && sev >= diagnose.Warning {
				return exitError{ExitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&opts.Interval, "interval", "i", 5*time.Second, "time between the two snapshots")
	f.VarP(&opts.Netns, "netns", "n", "network namespace to diagnose: NAME (/run/netns), PATH, or pid:N")
	f.BoolVar(&opts.Once, "once", false, "report totals since boot instead of waiting for a delta")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.StringVar(&opts.Trace, "trace", "auto", "trace drops in the kernel with eBPF (skb:kfree_skb) for function-level evidence: auto, on or off")
	f.BoolVar(&opts.NoSockets, "no-sockets", false, "skip the socket view that names the sockets and processes responsible")
	from.add(cmd)
	f.BoolVar(&all, "all-netns", false, "diagnose every network namespace of the host over one interval and rank them by harm")
	nf.add(f, true)
	cmd.MarkFlagsMutuallyExclusive("all-netns", "netns", "pod", "container")
	f.StringArrayVar(&expects, "expect", nil, "STAGE[:MATCH]: drops declared intended, shown as info with the reason \"expected\" and left out of the exit code; MATCH is a word of the finding's evidence: a rule's handle, comment or text, a port, a reason (repeatable)")
	return cmd
}
