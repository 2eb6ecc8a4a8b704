package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/netdrop/netdrop/internal/lab"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/netdrop/netdrop/stage"
	"github.com/spf13/cobra"
)

func init() { register(newLabCmd) }

func newLabCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Break packet delivery on purpose in network namespaces and watch netdrop find it",
		Long: `lab builds small networks of network namespaces joined by veth pairs, injects
one known fault (a DROP rule, a tiny buffer, a full table, a slow reader),
drives bounded traffic through it, runs netdrop's diagnosis inside the
namespace where the loss happens, and checks that the top finding names the
stage the fault breaks.

It needs root. It touches nothing outside its own namespaces except the few
host-wide settings a scenario needs (net.core.netdev_max_backlog,
net.netfilter.nf_conntrack_max), which are journalled under /run/netdrop-lab
and restored afterwards, or by the next run if this one is killed.`,
	}
	cmd.AddCommand(newLabListCmd(e), newLabRunCmd(e), newLabCleanCmd(e))
	return cmd
}

func newLabListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the scenarios, the stage each breaks, and its story",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type item struct {
				Name  string   `json:"name"`
				Stage stage.ID `json:"stage"`
				Story string   `json:"story"`
			}
			var items []item
			for _, s := range lab.List() {
				items = append(items, item{s.Name, s.Stage, s.Story})
			}
			if asJSON {
				return writeJSON(e.stdout, items)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SCENARIO\tSTAGE\tSTORY")
			for _, it := range items {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Name, it.Stage, it.Story)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func newLabRunCmd(e *env) *cobra.Command {
	var (
		asJSON     bool
		keep       bool
		fix        bool
		markdown   bool
		keepRecord string
	)
	cmd := &cobra.Command{
		Use:   "run NAME...|all",
		Short: "Run scenarios: build, break, diagnose, compare, tear down",
		Long: `run runs each named scenario (or all of them): it builds the namespaces,
injects the fault, drives traffic, diagnoses inside the right namespace and
prints the diagnosis as 'netdrop diagnose' would, then PASS or FAIL with the
expected and the found stage.

With --fix it then applies the plan 'netdrop tune --apply' would make for
that diagnosis (with its rollback file; host-wide settings the namespace
cannot change are set on the host, journalled), makes the application
changes the findings name on the lab's own sockets, runs the same traffic
again and diagnoses again. A scenario passes --fix when the loss at its stage
falls by at least 90%, or when nothing could be applied and the finding says
why its fix is not automatic. Every setting is rolled back afterwards.
--markdown prints the before → after table (README's lab section).

Exit code: 0 every scenario passed, 1 one failed, 2 the lab could not run.`,
		Example: `  netdrop lab run udp-rcvbuf        # one scenario, with its diagnosis
  netdrop lab run all --json        # every scenario, one JSON array
  netdrop lab run qdisc-drop --keep # leave the namespaces up to explore
  netdrop lab run all --fix --markdown # prove each fix: loss before → after
  netdrop lab run all --keep-record=/tmp/lab   # /tmp/lab/SCENARIO.ndrec for diagnose --from, report`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := lab.Select(args)
			if err != nil {
				return err
			}
			if asJSON && markdown {
				return fmt.Errorf("--json and --markdown cannot be combined")
			}
			opts := lab.Options{Keep: keep, Fix: fix, Log: func(msg string) { fmt.Fprintln(e.stderr, msg) }, RecordDir: keepRecord, Build: buildinfo.Read().String()}
			each := func(r lab.Result) {
				if !asJSON && !markdown {
					printLabResult(e.stdout, r, e.style(e.stdout))
				}
			}
			results, runErr := lab.Run(cmd.Context(), list, opts, each)
			if asJSON && results != nil {
				if err := writeJSON(e.stdout, results); err != nil {
					return err
				}
			}
			if markdown && len(results) > 0 {
				printLabMarkdown(e.stdout, results)
			}
			if !asJSON && !markdown && len(results) > 0 {
				printLabSummary(e.stdout, results, keep)
			}
			if errors.Is(runErr, context.Canceled) {
				return fmt.Errorf("interrupted: the lab removed its namespaces and restored the settings it changed")
			}
			if runErr != nil {
				return runErr
			}
			for _, r := range results {
				if !r.Pass {
					return exitError{ExitFindings}
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON array of results")
	f.BoolVar(&keep, "keep", false, "leave the namespaces up for exploration (host-wide settings are still restored)")
	f.BoolVar(&fix, "fix", false, "apply netdrop's own fix, run the traffic again and compare the loss (settings rolled back afterwards)")
	f.BoolVar(&markdown, "markdown", false, "print one markdown table of the results (with --fix: drops before → after)")
	f.StringVar(&keepRecord, "keep-record", "", "keep each scenario's evidence as a recording DIR/SCENARIO.ndrec (--keep-record alone: the current directory) for diagnose --from and report")
	f.Lookup("keep-record").NoOptDefVal = "."
	return cmd
}

func newLabCleanCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Remove lab namespaces left by --keep or a killed run, and restore saved settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			left, err := lab.Clean()
			if left.Empty() && err == nil {
				fmt.Fprintln(e.stdout, "nothing to clean")
				return nil
			}
			for _, ns := range left.Namespaces {
				fmt.Fprintf(e.stdout, "removed namespace %s\n", ns)
			}
			for _, l := range left.Links {
				fmt.Fprintf(e.stdout, "removed link %s\n", l)
			}
			for _, s := range left.Sysctls {
				fmt.Fprintf(e.stdout, "restored %s = %s\n", s.Name, s.Value)
			}
			for _, k := range left.Kept {
				fmt.Fprintf(e.stdout, "kept %s\n", k)
			}
			return err
		},
	}
}

// printLabResult shows one scenario as a user would see netdrop diagnose it,
// then the verdict.
func printLabResult(w io.Writer, r lab.Result, st report.Style) {
	fmt.Fprintf(w, "=== %s: %s (expects %s)\n\n", r.Scenario, r.Story, r.Expected)
	if r.Report != nil {
		_ = report.DiagnosisStyled(w, r.Report, st)
		fmt.Fprintln(w)
	}
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	found := string(r.Found)
	if found == "" {
		found = "no finding"
	}
	if r.Fix != nil {
		printLabFix(w, r.Fix, st)
	}
	fmt.Fprintf(w, "%s %s: expected %s, found %s (%d drops, %.1fs)\n", st.Verdict(r.Pass, verdict), r.Scenario, r.Expected, found, r.Drops, r.DurationS)
	if r.Fix != nil {
		fv := "PASS"
		if !r.Fix.Pass {
			fv = "FAIL"
		}
		fmt.Fprintf(w, "%s %s --fix: %s\n", st.Verdict(r.Fix.Pass, fv), r.Scenario, r.Fix.Verdict)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	if r.Record != "" {
		fmt.Fprintf(w, "  recording: %s (netdrop diagnose --from %[1]s; netdrop report %[1]s -o report.html)\n", r.Record)
	}
	fmt.Fprintln(w)
}

// printLabFix shows what --fix changed and the diagnosis after it.
func printLabFix(w io.Writer, f *lab.FixResult, st report.Style) {
	if len(f.Applied) > 0 {
		fmt.Fprintln(w, "--fix applied (rolled back afterwards):")
		for _, c := range f.Applied {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	for _, sk := range f.Skipped {
		what := ""
		if sk.Setting != nil {
			what = sk.Setting.String()
		} else if sk.App != nil {
			what = sk.App.String()
		}
		fmt.Fprintf(w, "  skipped %s: %s\n", what, sk.Reason)
	}
	if f.Report != nil {
		fmt.Fprintln(w, "\nafter the fix, the same traffic:")
		_ = report.DiagnosisStyled(w, f.Report, st)
		fmt.Fprintln(w)
	}
}

// printLabMarkdown prints one table row per scenario: the loss at its
// stage before and after --fix, what was applied, and the verdict.
func printLabMarkdown(w io.Writer, results []lab.Result) {
	fmt.Fprintln(w, "| scenario | stage | drops before → after | fix applied | --fix |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range results {
		if r.Fix == nil {
			verdict := "pass"
			if !r.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(w, "| %s | %s | %d | | %s |\n", r.Scenario, r.Expected, r.Drops, verdict)
			continue
		}
		f := r.Fix
		var applied []string
		for _, c := range f.Applied {
			applied = append(applied, "`"+mdEscape(c.String())+"`")
		}
		what := strings.Join(applied, "<br>")
		if what == "" && f.NotAutomatic != "" {
			what = "not automatic: " + mdEscape(f.NotAutomatic)
		}
		counts := fmt.Sprintf("%d → %d", f.DropsBefore, f.DropsAfter)
		if f.DropsElsewhereAfter > 0 {
			var at []string
			for _, st := range f.ElsewhereStages {
				at = append(at, string(st))
			}
			counts += fmt.Sprintf(" (+%d at %s)", f.DropsElsewhereAfter, strings.Join(at, ", "))
		}
		if f.DropsBefore == 0 && f.DropsAfter == 0 {
			counts = fmt.Sprintf("%s finding → %s", orNoFinding(f.SeverityBefore), orNoFinding(f.SeverityAfter))
		}
		verdict := "pass"
		if !r.Pass {
			verdict = "**FAIL**: " + mdEscape(f.Verdict)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Expected, counts, what, verdict)
	}
}

func orNoFinding(sev string) string {
	if sev == "" {
		return "no"
	}
	return sev
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func printLabSummary(w io.Writer, results []lab.Result, keep bool) {
	passed := 0
	var total float64
	for _, r := range results {
		if r.Pass {
			passed++
		}
		total += r.DurationS
	}
	fmt.Fprintf(w, "%d/%d scenarios passed in %.1fs\n", passed, len(results), total)
	if !keep {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := false
	for _, r := range results {
		if len(r.Kept) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nKept for exploration (ip netns list shows every namespace):")
			header = true
		}
		enter := r.Kept[0]
		diag := "netdrop diagnose"
		if r.Diagnosed != "" {
			enter = r.Diagnosed
			diag += " --netns " + r.Diagnosed
		}
		fmt.Fprintf(tw, "  %s\tip netns exec %s bash\t%s\n", r.Scenario, enter, diag)
	}
	if !header {
		return
	}
	tw.Flush()
	fmt.Fprintln(w, "Remove them: netdrop lab clean   (the next lab run also removes them)")
}
