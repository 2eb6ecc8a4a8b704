package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/spf13/cobra"
)

func init() { register(newCountersCmd) }

func newCountersCmd(e *env) *cobra.Command {
	var (
		ns       counters.Target
		asJSON   bool
		nonZero  bool
		stageArg string
		explain  bool
		from     fromFlags
	)
	cmd := &cobra.Command{
		Use:   "counters",
		Short: "Dump every drop-related counter with its source and stage (like nstat -az for the whole path)",
		Long: `counters reads every source diagnose reads — /proc/net/snmp, netstat, snmp6,
softnet_stat, conntrack, neighbour tables, sockstat, interrupts, softirqs,
link statistics, driver statistics, qdiscs, firewall rules — once, and prints
each value with where it was read and the stage of the packet path it is
evidence for. Values are totals since boot (or since the object was created).

With --from FILE it prints the last reading of a recording made by netdrop
record (or the last at or before --until).`,
		Example: `  netdrop counters --nonzero
  netdrop counters --stage socket-rcvbuf --explain
  netdrop counters --netns web --json
  netdrop counters --from drops.ndrec --until 14:05 --nonzero`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := from.check(cmd, "netns"); err != nil {
				return err
			}
			var snap *counters.Snapshot
			if from.path != "" {
				_, sp, err := from.span(e.stderr)
				if err != nil && (!errors.Is(err, recording.ErrEmptySpan) || sp == nil || sp.First == nil) {
					return err
				}
				// The stretch's last reading, or its only one.
				snap = sp.First.Counters
				if sp.Last != nil {
					snap = sp.Last.Counters
				}
			} else {
				var err error
				if snap, err = counters.CollectIn(cmd.Context(), ns, counters.Options{}); err != nil {
					return err
				}
			}
			keep := snap.Counters[:0] // filtered in place: the snapshot is ours
			for _, c := range snap.Counters {
				if nonZero && c.Value == 0 {
					continue
				}
				if stageArg != "" && string(c.Stage) != stageArg {
					continue
				}
				keep = append(keep, c)
			}
			if len(keep) == 0 {
				keep = nil // as before: "counters": null when nothing matches
			}
			snap.Counters = keep
			snap.Sort()
			if asJSON {
				return writeJSON(e.stdout, snap)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			header := "COUNTER\tVALUE\tSTAGE\tSOURCE"
			if explain {
				header += "\tMEANING"
			}
			fmt.Fprintln(tw, header)
			for _, c := range snap.Counters {
				st := string(c.Stage)
				if st == "" {
					st = "-"
				}
				name := c.Name()
				if c.Gauge {
					name += " (level)"
				}
				src := c.Source
				if c.HostWide {
					src += " (host-wide)"
				}
				line := fmt.Sprintf("%s\t%d\t%s\t%s", name, c.Value, st, src)
				if explain {
					fi, _ := counters.LookupCounter(c.Source, c.Field)
					line += "\t" + fi.Meaning
				}
				fmt.Fprintln(tw, line)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(snap.Unavailable) > 0 {
				fmt.Fprintln(e.stdout, "\nNot read:")
				for _, u := range snap.Unavailable {
					fmt.Fprintf(e.stdout, "  - %s: %s\n", u.Where(), strings.TrimSpace(u.Reason))
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.VarP(&ns, "netns", "n", "network namespace to read: NAME (/run/netns), PATH, or pid:N")
	f.BoolVar(&asJSON, "json", false, "print the snapshot as JSON")
	f.BoolVar(&nonZero, "nonzero", false, "only counters that are not zero")
	f.StringVar(&stageArg, "stage", "", "only counters of one stage (e.g. socket-rcvbuf)")
	from.add(cmd)
	f.BoolVar(&explain, "explain", false, "add a column saying what each counter means")
	return cmd
}
