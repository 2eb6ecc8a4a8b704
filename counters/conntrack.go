package counters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Connection tracking: the per-CPU event counters of /proc/net/stat and the
// table's size and limit from /proc/sys/net/netfilter. All of it is per
// network namespace except nf_conntrack_max, which is one global limit.

func init() { register(ConntrackSource{}) }

// ConntrackSource reads the conntrack statistics, summed over CPUs and
// named as the kernel's header names them ("drop", "insert_failed" …, as
// `conntrack -S` prints them too), and the gauges
// nf_conntrack_count and nf_conntrack_max. A kernel without conntrack loaded
// gives one unavailable line saying so, not an error per file.
type ConntrackSource struct{}

// ID implements Source.
func (ConntrackSource) ID() SourceID { return ProcNetStatConntrack }

// Collect implements Source.
func (ConntrackSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fsys := r.FS
	statErr := collectCounters(fsys, s, ProcNetStatConntrack, fsys.NetPath("stat", "nf_conntrack"), parseConntrackStat)
	var gaugeErrs []error
	gauges := 0
	for _, g := range []struct {
		src   SourceID
		field string
	}{
		{ProcSysConntrackCount, "nf_conntrack_count"},
		{ProcSysConntrackMax, "nf_conntrack_max"},
	} {
		v, err := readKept(r.Kept, fsys, g.src, fsys.ProcPath("sys", "net", "netfilter", g.field), parseUintFile)
		if err != nil {
			gaugeErrs = append(gaugeErrs, err)
			continue
		}
		gauges++
		s.Add(Counter{Source: g.src, Field: g.field, Value: v, Stage: stageOf(g.src, g.field), Gauge: true})
	}
	notLoaded := errors.Is(statErr, fs.ErrNotExist) && gauges == 0 && allNotExist(gaugeErrs)
	switch {
	case notLoaded:
		// Neither the statistics nor the sysctls exist: the module is not
		// loaded, so nothing can be dropped by conntrack either.
		s.Unavailable = append(s.Unavailable, Unavailable{
			Source: ProcNetStatConntrack,
			Reason: "conntrack is not loaded (no nf_conntrack module in this kernel or namespace): nothing to read, and nothing dropped by it",
		})
		return nil
	case errors.Is(statErr, fs.ErrNotExist):
		s.Unavailable = append(s.Unavailable, Unavailable{
			Source: ProcNetStatConntrack,
			Reason: "conntrack is loaded but its per-CPU statistics are not in /proc (CONFIG_NF_CONNTRACK_PROCFS=n); `conntrack -S` reads them over netlink",
		})
	case statErr != nil:
		s.Fail(ProcNetStatConntrack, statErr)
	}
	for _, err := range gaugeErrs {
		if !errors.Is(err, fs.ErrNotExist) {
			s.Fail(ProcSysConntrackCount, err)
		}
	}
	return nil
}

func allNotExist(errs []error) bool {
	for _, err := range errs {
		if !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// parseConntrackStat reads /proc/net/stat/nf_conntrack by its header line.
// The columns changed over the years (net/netfilter/nf_conntrack_standalone.c,
// ct_cpu_seq_show): 16 before 2.6.35, then search_restart; "searched" became
// "clashres" around 5.9 and "delete_list" became "chainlength" in 5.14. Each
// is named as the running kernel's header names it. The entries column is
// the table's size repeated on every CPU's line: it is taken once, never
// summed; every other column is an event count summed over the CPUs.
func parseConntrackStat(r io.Reader) ([]Counter, error) {
	t, err := parsePerCPUStat(r)
	if err == nil && len(t.Rows) == 0 {
		err = fmt.Errorf("%w: no CPU lines", ErrFileParse)
	}
	return statCounters(ProcNetStatConntrack, t, false, "entries"), err
}
