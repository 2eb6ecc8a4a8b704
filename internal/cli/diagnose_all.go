package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/netdrop/netdrop/stage"
)

// allNetnsReport is diagnose --all-netns: every namespace of the host, most
// harmed first.
type allNetnsReport struct {
	SchemaVersion int       `json:"schema_version"`
	Host          string    `json:"host"`
	Kernel        string    `json:"kernel"`
	StartedAt     time.Time `json:"started_at"`
	IntervalS     float64   `json:"interval_s"`
	Once          bool      `json:"since_boot,omitempty"`
	// Namespaces are ranked by harm: the worst severity of the
	// namespace's own findings, then its drops.
	Namespaces []netnsDiagnosis `json:"namespaces"`
	// Problems are what the namespace map could not read (hidden
	// processes, a CRI runtime that did not answer).
	Problems []string `json:"problems,omitempty"`
}

// netnsDiagnosis is one namespace's block.
type netnsDiagnosis struct {
	Rank  int             `json:"rank"`
	Owner *diagnose.Owner `json:"owner"`
	// Worst is the worst severity of the namespace's own findings;
	// absent when it has none.
	Worst string `json:"worst,omitempty"`
	// Drops are the namespace's own drops: per stage the largest count
	// among its findings, summed over stages.
	Drops  uint64           `json:"drops"`
	Report *diagnose.Report `json:"report,omitempty"`
	// Error says why the namespace could not be diagnosed (it went
	// away, it may not be entered).
	Error string `json:"error,omitempty"`

	severity diagnose.Severity
	harmed   bool
}

// diagnoseAllNetns maps the host's namespaces, diagnoses each over one
// interval and ranks them.
func diagnoseAllNetns(ctx context.Context, opts diagnose.Options, nf *nsmapFlags) (*allNetnsReport, error) {
	m, err := nf.discover(ctx)
	if err != nil {
		return nil, err
	}
	targets := make([]counters.Target, len(m.Namespaces))
	for i, n := range m.Namespaces {
		targets[i] = n.Target()
	}
	each, err := diagnose.RunEach(ctx, targets, opts)
	if err != nil {
		return nil, err
	}
	return rankNetns(m, each), nil
}

// rankNetns turns RunEach's reports into the ranked report. A namespace
// other than netdrop's own keeps only its own findings: the host-wide ones
// (softnet, NICs, interrupts) are the host's block's, not repeated in every
// container's.
func rankNetns(m *netnsmap.Map, each []diagnose.Each) *allNetnsReport {
	out := &allNetnsReport{SchemaVersion: diagnose.SchemaVersion, Problems: m.Problems, Namespaces: []netnsDiagnosis{}}
	for i, e := range each {
		n := m.Namespaces[i]
		d := netnsDiagnosis{Owner: ownerOf(n)}
		if e.Err != nil {
			d.Error = e.Err.Error()
			out.Namespaces = append(out.Namespaces, d)
			continue
		}
		r := e.Report
		if !n.Self {
			r.Findings = slices.DeleteFunc(r.Findings, func(f diagnose.Finding) bool { return f.HostWide })
		}
		r.SetOwner(d.Owner)
		d.Report = r
		if sev, any := r.Worst(); any {
			d.severity, d.harmed, d.Worst = sev, true, sev.String()
		}
		d.Drops = ownDrops(r.Findings)
		if out.Host == "" {
			out.Host, out.Kernel, out.StartedAt, out.IntervalS, out.Once = r.Host, r.Kernel, r.StartedAt, r.IntervalS, r.Once
		}
		out.Namespaces = append(out.Namespaces, d)
	}
	slices.SortStableFunc(out.Namespaces, func(a, b netnsDiagnosis) int {
		if a.harmed != b.harmed {
			return boolOrder(a.harmed)
		}
		if c := cmp.Compare(b.severity, a.severity); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Drops, a.Drops); c != 0 {
			return c
		}
		// Namespaces that could not be read after the healthy ones.
		return cmp.Compare(a.Error, b.Error)
	})
	for i := range out.Namespaces {
		out.Namespaces[i].Rank = i + 1
	}
	return out
}

func boolOrder(first bool) int {
	if first {
		return -1
	}
	return 1
}

// ownDrops sums, over stages, the largest drop count among the findings at
// that stage (as Report.Stages does: findings at one stage often count the
// same packets), leaving out intended drops.
func ownDrops(fs []diagnose.Finding) uint64 {
	max := map[stage.ID]uint64{}
	for _, f := range fs {
		if f.Expected == "" && f.Drops > max[f.Stage] {
			max[f.Stage] = f.Drops
		}
	}
	var sum uint64
	for _, v := range max {
		sum += v
	}
	return sum
}

// worst is the worst severity over every namespace, for the exit code.
func (a *allNetnsReport) worst() (diagnose.Severity, bool) {
	for _, d := range a.Namespaces {
		if d.harmed {
			return d.severity, true // ranked: the first harmed is the worst
		}
	}
	return diagnose.Info, false
}

// maxHealthyNamed bounds the names the healthy line lists.
const maxHealthyNamed = 10

// renderAllNetns prints one block per namespace with findings, most harmed
// first, then one line for the healthy ones and one per namespace that
// could not be read.
func renderAllNetns(w io.Writer, a *allNetnsReport, st report.Style) error {
	span := fmt.Sprintf("over %s", time.Duration(a.IntervalS*float64(time.Second)).Round(time.Millisecond))
	if a.Once {
		span = "totals since boot"
	}
	fmt.Fprintf(w, "%d network namespaces on %s, %s; ranked by harm (severity, then drops)\n", len(a.Namespaces), a.Host, span)
	for _, p := range a.Problems {
		fmt.Fprintf(w, "  note: %s\n", p)
	}
	var healthy, failed []netnsDiagnosis
	for _, d := range a.Namespaces {
		switch {
		case d.Error != "":
			failed = append(failed, d)
		case !d.harmed:
			healthy = append(healthy, d)
		default:
			fmt.Fprintf(w, "\n#%d %s, %d drops — %s\n", d.Rank, d.Worst, d.Drops, ownerLine(d.Owner))
			if err := report.DiagnosisStyled(w, d.Report, st); err != nil {
				return err
			}
		}
	}
	if len(healthy) > 0 {
		var names []string
		for _, d := range healthy[:min(len(healthy), maxHealthyNamed)] {
			names = append(names, shortOwner(d.Owner))
		}
		more := ""
		if len(healthy) > maxHealthyNamed {
			more = fmt.Sprintf(", and %d more", len(healthy)-maxHealthyNamed)
		}
		fmt.Fprintf(w, "\nno findings in %d namespaces: %s%s\n", len(healthy), strings.Join(names, ", "), more)
	}
	for _, d := range failed {
		fmt.Fprintf(w, "\nnot diagnosed: %s: %s\n", ownerLine(d.Owner), d.Error)
	}
	return nil
}

// shortOwner names a namespace in a list: its pod, else its first
// container, else its label.
func shortOwner(o *diagnose.Owner) string {
	switch {
	case o.Pod != "" && o.PodNamespace != "":
		return o.PodNamespace + "/" + o.Pod
	case o.Pod != "":
		return o.Pod
	case len(o.Containers) > 0:
		return o.Netns + " (" + o.Containers[0] + ")"
	case len(o.Processes) > 0:
		return o.Netns + " (" + o.Processes[0] + ")"
	}
	return o.Netns
}
