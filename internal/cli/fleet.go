package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/netdrop/netdrop/internal/fleet"
)

func init() { register(newFleetCmd) }

func newFleetCmd(e *env) *cobra.Command {
	var (
		o       fleet.Options
		asJSON  bool
		headers []string
	)
	cmd := &cobra.Command{
		Use:   "fleet --prometheus URL",
		Short: "Rank the nodes of a fleet by packet loss per stage, from the Prometheus that scrapes their exporters",
		Long: `fleet asks a Prometheus-compatible query API (Prometheus, Thanos Query,
Mimir, VictoriaMetrics: they all serve /api/v1/query) what the netdrop
exporters of every node reported over --range, and prints the worst
node × stage pairs with what to run on each node next.

It reads three families every netdrop exporter serves:
  increase(netdrop_stage_drops_total[RANGE])   packets lost per node and stage
  max_over_time(netdrop_findings[RANGE])        the worst finding severity seen
  max_over_time(netdrop_findings_expected[RANGE])   drops declared intended

Rows are ranked like diagnose's findings: the worst severity first
(critical, warning, info, then drops no finding was made for), then the
packets lost. A node is what --node-label names: "instance" (the scraped
exporter's host:port) unless your scrape configuration puts the node name in
another label ("node" in many Kubernetes setups). The commands printed reach
the node with ssh at that label's host part: netdrop diagnose there gives the
cause and the fix computed from that node's settings, netdrop counters
--stage the counters that moved.

Nodes that reported during the range but not in its last 5 minutes are
listed as silent: an exporter that is down hides its node's loss.

Drops are Prometheus' increase(): extrapolated to the ends of the range, so
they can be fractional and a few percent off the kernel's count; the rate is
drops over the whole range.

Exit codes: 0 no node had a finding at warning or above in the range, 1 one
did, 2 the query API could not be reached, refused a query, or holds no
netdrop series (each says which).`,
		Example: `  netdrop fleet --prometheus http://prometheus:9090
  netdrop fleet --prometheus http://prometheus:9090 --range 24h --top 20
  netdrop fleet --prometheus http://thanos-query:10902 --selector 'cluster="eu1"' --node-label node
  netdrop fleet --prometheus http://mimir:8080/prometheus --header X-Scope-OrgID=team-a --json | jq '.rows[0]'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.URL == "" {
				return fmt.Errorf("--prometheus URL is required (the query API's base, as in http://prometheus:9090)")
			}
			if o.Top <= 0 {
				return fmt.Errorf("--top must be positive (got %d)", o.Top)
			}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || strings.TrimSpace(k) == "" {
					return fmt.Errorf("--header %q: want NAME=VALUE", kv)
				}
				if o.Headers == nil {
					o.Headers = map[string]string{}
				}
				o.Headers[strings.TrimSpace(k)] = v
			}
			r, err := fleet.Query(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				err = writeJSON(e.stdout, r)
			} else {
				err = printFleet(e, r)
			}
			if err != nil {
				return err
			}
			if r.AtLeastWarning() {
				return exitError{ExitFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "prometheus", "", "base URL of the query API: Prometheus, Thanos Query, VictoriaMetrics, Mimir's …/prometheus")
	f.DurationVar(&o.Range, "range", fleet.DefaultRange, "window to count drops and findings over, ending now")
	f.IntVar(&o.Top, "top", fleet.DefaultTop, "node × stage rows to print")
	f.StringVar(&o.NodeLabel, "node-label", fleet.DefaultNodeLabel, "label that names a node")
	f.StringVar(&o.Selector, "selector", "", `label matchers that narrow the series, e.g. 'job="netdrop",cluster="eu1"'`)
	f.StringArrayVar(&headers, "header", nil, "NAME=VALUE sent with every query, e.g. X-Scope-OrgID=team or Authorization=… (repeatable)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "bound on each query")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// printFleet renders the ranking as a table, each row followed by the
// commands to run on that node.
func printFleet(e *env, r *fleet.Report) error {
	var b strings.Builder
	rng := time.Duration(r.RangeS * float64(time.Second))
	fmt.Fprintf(&b, "netdrop fleet — %s, the %s before %s, by %s\n", r.Source, rng, r.At.Format("2006-01-02 15:04:05Z"), r.NodeLabel)
	if r.Selector != "" {
		fmt.Fprintf(&b, "series: {%s}\n", r.Selector)
	}
	fmt.Fprintf(&b, "%d node(s) report; %d lost packets or had findings\n", len(r.Nodes), r.NodesWithLoss)
	if len(r.Silent) > 0 {
		fmt.Fprintf(&b, "silent for the last %s (exporter down or node gone; their loss is not ranked): %s\n",
			time.Duration(r.SilentAfterS*float64(time.Second)), strings.Join(r.Silent, ", "))
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning from the query API: %s\n", w)
	}
	if len(r.Rows) == 0 {
		fmt.Fprintf(&b, "\nno node lost packets at any stage in the range\n")
		_, err := fmt.Fprint(e.stdout, b.String())
		return err
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tnode\tstage\tdrops\trate/s\tfinding\t")
	for i, row := range r.Rows {
		sev := string(row.Severity)
		if sev == "" {
			sev = "-"
		}
		if row.Expected {
			sev += ", expected"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.0f\t%.3g\t%s\t\n", i+1, row.Node, row.Stage, row.Drops, row.RatePerS, sev)
	}
	tw.Flush()
	b.WriteString("\nwhat to run:\n")
	for i, row := range r.Rows {
		fmt.Fprintf(&b, "%d. %s %s\n", i+1, row.Node, row.Stage)
		for _, c := range row.Run {
			fmt.Fprintf(&b, "     %s\n", c)
		}
	}
	if r.More > 0 {
		fmt.Fprintf(&b, "\n%d more node × stage row(s); --top %d shows them\n", r.More, len(r.Rows)+r.More)
	}
	_, err := fmt.Fprint(e.stdout, b.String())
	return err
}
