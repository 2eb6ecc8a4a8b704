package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/netdrop/netdrop/internal/safefile"
	"github.com/netdrop/netdrop/internal/tune"
	"github.com/spf13/cobra"
)

func init() { register(newTuneCmd) }

// tuneOutput is the JSON shape of netdrop tune.
type tuneOutput struct {
	Plan    *tune.Plan   `json:"plan"`
	Applied *tune.Result `json:"applied,omitempty"`
	Persist string       `json:"persisted_to,omitempty"`
	DryRun  bool         `json:"dry_run"`
}

func newTuneCmd(e *env) *cobra.Command {
	var (
		opts         diagnose.Options
		asJSON       bool
		apply        bool
		rollbackFile string
		rollback     string
		persist      string
	)
	cmd := &cobra.Command{
		Use:   "tune",
		Short: "Turn a diagnosis into a plan of kernel setting changes; dry run unless --apply",
		Long: `tune diagnoses this host (or one network namespace) like netdrop diagnose, then
lists every setting the findings ask to change: the value now (read again at
plan time), the proposed value, the finding that asks for it, and the risk.
Nothing changes without --apply.

With --apply it first saves every value it will change to a rollback file
(default /run/netdrop/rollback-TIME.json: runtime settings do not survive a
reboot, and neither need their rollback), then changes them one by one; if one
fails, the ones already changed are restored. --rollback FILE restores every
saved value byte for byte. --persist FILE writes the sysctls in sysctl.d form.

tune never proposes removed or harmful settings (tcp_tw_recycle, shrinking or
disabling conntrack, rp_filter off), never lowers a limit, and says when a
finding's fix belongs in the application rather than in the kernel.`,
		Example: `  netdrop tune                                   # what would change, and why
  netdrop tune --netns web --interval 10s --json
  netdrop tune --apply                           # change it, rollback file under /run/netdrop
  netdrop tune --rollback /run/netdrop/rollback-20260101T120000.json
  netdrop tune --persist /etc/sysctl.d/60-netdrop.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rollback != "" {
				if apply || persist != "" {
					return fmt.Errorf("--rollback cannot be combined with --apply or --persist")
				}
				return runRollback(e, rollback, opts.Netns.Spec(), cmd.Flags().Changed("netns"), asJSON)
			}
			if err := checkInterval("--interval", opts.Interval, false); err != nil {
				return err
			}
			opts.Progress = func(msg string) { fmt.Fprintln(e.stderr, msg) }
			r, err := diagnose.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			sys := tune.Kernel{Netns: opts.Netns}
			plan := tune.Build(r, sys, tune.Gather(cmd.Context(), r, opts.Netns))
			out := tuneOutput{Plan: plan, DryRun: !apply}
			var applyErr error
			var nothing bool
			if apply {
				nothing, applyErr = applyPrecheck(plan, os.Geteuid())
			}
			switch {
			case apply && nothing:
				out.Applied = &tune.Result{}
			case apply && applyErr != nil:
				out.DryRun = true
			case apply:
				if rollbackFile == "" {
					rollbackFile, err = defaultRollbackFile()
					if err != nil {
						return err
					}
				}
				out.Applied, applyErr = tune.Apply(plan, sys, rollbackFile)
			}
			if persist != "" {
				if err := tune.Persist(persist, plan); err != nil {
					return err
				}
				out.Persist = persist
			}
			if asJSON {
				if err := writeJSON(e.stdout, out); err != nil {
					return err
				}
			} else if err := renderTune(e.stdout, out); err != nil {
				return err
			}
			if applyErr != nil {
				return applyErr
			}
			if !apply && len(plan.Actionable()) > 0 {
				return exitError{ExitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVarP(&opts.Interval, "interval", "i", 5*time.Second, "time between the two snapshots of the diagnosis")
	f.VarP(&opts.Netns, "netns", "n", "network namespace to tune: NAME (/run/netns), PATH, or pid:N")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	f.BoolVar(&apply, "apply", false, "make the changes (after saving a rollback file)")
	f.StringVar(&rollbackFile, "rollback-file", "", "where --apply saves the previous values (default /run/netdrop/rollback-TIME.json)")
	f.StringVar(&rollback, "rollback", "", "restore the values saved in this rollback file, and nothing else")
	f.StringVar(&persist, "persist", "", "write the proposed sysctls to this sysctl.d file")
	return cmd
}

// applyPrecheck decides what --apply does before anything is created or
// written: with nothing to change it needs no rollback file, no directory
// for one and no privileges (nothing true, exit 0); otherwise a user other
// than root is told it needs root, with the plan shown.
func applyPrecheck(p *tune.Plan, euid int) (nothing bool, err error) {
	if len(p.Actionable()) == 0 {
		return true, nil
	}
	if euid != 0 {
		return false, errors.New("tune --apply changes kernel settings and needs root: nothing changed (the plan above is what it would do)")
	}
	return false, nil
}

func defaultRollbackFile() (string, error) {
	dir := "/run/netdrop"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("rollback directory: %w (choose one with --rollback-file)", err)
	}
	// Rollback files are trusted only in a directory nobody else can write.
	if err := safefile.CheckDir(dir); err != nil {
		return "", fmt.Errorf("rollback directory refused: %w (choose one with --rollback-file)", err)
	}
	return filepath.Join(dir, "rollback-"+time.Now().UTC().Format("20060102T150405")+".json"), nil
}

func runRollback(e *env, path, ns string, nsGiven, asJSON bool) error {
	rb, err := tune.ReadRollback(path)
	if err != nil {
		return err
	}
	if !nsGiven {
		ns = rb.Netns
	}
	target, err := netns.Parse(ns)
	if err != nil {
		return err
	}
	done, err := tune.RollbackFrom(tune.Kernel{Netns: target}, rb)
	if asJSON {
		if jerr := writeJSON(e.stdout, map[string]any{"rolled_back_from": path, "netns": ns, "restored": done}); jerr != nil {
			return jerr
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "rollback from %s:\n", path)
		for _, r := range done {
			switch r.Outcome {
			case tune.Restored:
				fmt.Fprintf(tw, "  %s\t= %s\t(was %s)\n", r.Setting, r.Value, r.Applied)
			case tune.AlreadyRestored:
				fmt.Fprintf(tw, "  %s\t= %s\t(already)\n", r.Setting, r.Value)
			case tune.ChangedSince:
				fmt.Fprintf(tw, "  %s\t= %s\t(left as is: netdrop set %s, someone changed it since)\n", r.Setting, r.Now, r.Applied)
			}
		}
		tw.Flush()
	}
	if err != nil {
		return fmt.Errorf("rollback from %s: %w", path, err)
	}
	return nil
}

func renderTune(w io.Writer, out tuneOutput) error {
	p := out.Plan
	where := "this host"
	if p.Netns != "" {
		where = "namespace " + p.Netns
	}
	if len(p.Items) == 0 {
		fmt.Fprintf(w, "No setting to change in %s.\n", where)
	} else {
		switch {
		case out.Applied != nil:
			fmt.Fprintf(w, "Changes for %s:\n\n", where)
		default:
			fmt.Fprintf(w, "Plan for %s (dry run: nothing changed; --apply to make it):\n\n", where)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SETTING\tNOW\tPROPOSED\tSTAGE\tFINDING")
		for _, it := range p.Items {
			prop := it.Proposed
			if !it.Actionable() {
				prop = "(skip) " + prop
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Setting, it.Current, prop, it.Stage, it.Finding)
		}
		tw.Flush()
		fmt.Fprintln(w)
		for _, it := range p.Items {
			fmt.Fprintf(w, "%s:\n", it.Setting)
			if it.Skip != "" {
				fmt.Fprintf(w, "  skipped: %s\n", it.Skip)
			} else {
				fmt.Fprintf(w, "  risk: %s\n", it.Risk)
			}
			if it.Note != "" {
				fmt.Fprintf(w, "  note: %s\n", it.Note)
			}
		}
	}
	if len(p.Application) > 0 {
		fmt.Fprintln(w, "\nThe fix belongs in the application:")
		for _, a := range p.Application {
			fmt.Fprintf(w, "  [%s] %s: %s\n", a.Stage, a.Finding, a.Advice)
		}
	}
	if len(p.Manual) > 0 {
		fmt.Fprintln(w, "\nBy hand (tune does not make these):")
		for _, m := range p.Manual {
			fmt.Fprintf(w, "  # [%s] %s: %s\n  %s\n", m.Stage, m.Finding, m.Fix.NotAutomatic, report.CommandLine(m.Fix))
		}
	}
	if len(p.NotAutomatic) > 0 {
		fmt.Fprintln(w, "\nNo setting fixes these:")
		for _, a := range p.NotAutomatic {
			fmt.Fprintf(w, "  [%s] %s: %s\n", a.Stage, a.Finding, a.Advice)
		}
	}
	if out.Applied != nil {
		if len(out.Applied.Applied) > 0 {
			fmt.Fprintf(w, "\nApplied %d changes; to undo: netdrop tune --rollback %s\n", len(out.Applied.Applied), out.Applied.RollbackFile)
		} else {
			fmt.Fprintln(w, "\nNothing applied.")
		}
	}
	if out.Persist != "" {
		fmt.Fprintf(w, "Wrote the sysctls to %s.\n", out.Persist)
	}
	return nil
}
