package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/netdrop/netdrop/stage"
	"github.com/spf13/cobra"
)

func init() { register(newReportCmd) }

// reportPoints bounds the points of each chart: a day recorded every
// second still draws quickly and keeps the page small.
const reportPoints = 300

func newReportCmd(e *env) *cobra.Command {
	var (
		out     string
		from    fromFlags
		expects []string
	)
	cmd := &cobra.Command{
		Use:   "report FILE -o report.html",
		Short: "Turn a recording into one self-contained HTML page: path, drop rates over time, findings",
		Long: `report reads a recording made by netdrop record (or lab run --keep-record)
and writes one HTML page that loads nothing from the network, to open in any
browser or attach to a ticket:

  - the packet path, RX and TX, with each stage's drops over the stretch,
    coloured by the worst finding there;
  - the drop rate of each stage that lost packets, over time;
  - the findings of the whole stretch with their evidence, cause and fixes,
    as netdrop diagnose --from prints them;
  - what could not be read, and where and when it was recorded.`,
		Example: `  netdrop report drops.ndrec -o report.html
  netdrop report drops.ndrec --since 14:00 --until 14:10 -o peak.html`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("-o FILE is required (- for stdout)")
			}
			from.path = args[0]
			exp, err := diagnose.ParseExpects(expects)
			if err != nil {
				return err
			}
			var notes bytes.Buffer
			h, sp, err := from.span(&notes)
			if err != nil {
				return err
			}
			since, _ := parseWhen(from.since, h.Started)
			until, _ := parseWhen(from.until, h.Started)
			points, err := recording.Timeline(from.path, since, until, reportPoints, exp)
			if err != nil {
				return err
			}
			p := report.Page{
				Source: from.path, Host: h.Host, Kernel: h.Kernel, Netdrop: h.Netdrop,
				Start: sp.First.Time, End: sp.Last.Time, Interval: time.Duration(h.Interval), Intervals: sp.Intervals,
				Traced: sp.Trace != nil, Sockets: sp.Last.Sockets != nil,
				Diagnosis: diagnoseRecorded(h, sp, exp),
			}
			if s := bytes.TrimSpace(notes.Bytes()); len(s) > 0 {
				p.Notes = append(p.Notes, string(s))
			}
			if from.since != "" || from.until != "" {
				p.Notes = append(p.Notes, fmt.Sprintf("A stretch of the recording: --since %q --until %q.", from.since, from.until))
			}
			for _, pt := range points {
				tp := report.TimePoint{Start: pt.Start, End: pt.End, Rates: map[stage.ID]float64{}, Drops: map[stage.ID]uint64{}}
				for _, s := range pt.Stages {
					tp.Rates[s.Stage], tp.Drops[s.Stage] = s.Rate, s.Drops
				}
				p.Timeline = append(p.Timeline, tp)
			}
			var page bytes.Buffer
			if err := report.HTML(&page, p); err != nil {
				return err
			}
			if out == "-" {
				_, err := e.stdout.Write(page.Bytes())
				return err
			}
			if err := os.WriteFile(out, page.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write report: %w", err)
			}
			fmt.Fprintf(e.stderr, "wrote %s (%d findings, %d intervals)\n", out, len(p.Diagnosis.Findings), sp.Intervals)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "the HTML file to write (- for stdout)")
	f.StringVar(&from.since, "since", "", "start of the stretch: RFC 3339 time, HH:MM[:SS] (UTC, on the recording's first day) or +DURATION after its start")
	f.StringVar(&from.until, "until", "", "end of the stretch, in the same forms as --since")
	f.StringArrayVar(&expects, "expect", nil, "STAGE[:MATCH]: drops declared intended, as diagnose --expect")
	return cmd
}
