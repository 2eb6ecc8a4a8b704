package counters

import (
	"context"
	"errors"
	"io"
	"io/fs"
)

// The neighbour tables' statistics. The kernel creates these files only in
// the initial network namespace (neigh_table_init registers them under
// init_net's /proc/net/stat): the tables are shared by all namespaces, so
// the values are host-wide and absent when read from inside another
// namespace.

func init() { register(NeighSource{}) }

// NeighSource reads /proc/net/stat/arp_cache and ndisc_cache, summed over
// CPUs, with the kernel's column names: "table_fulls", "unresolved_discards",
// "forced_gc_runs" …; the Source tells the two tables apart.
type NeighSource struct{}

// ID implements Source.
func (NeighSource) ID() SourceID { return ProcNetStatARPCache }

// Collect implements Source.
func (NeighSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fsys := r.FS
	tables := []struct {
		src  SourceID
		file string
	}{
		{ProcNetStatARPCache, "arp_cache"},
		{ProcNetStatNDiscCache, "ndisc_cache"},
	}
	type miss struct {
		src SourceID
		err error
	}
	var missing []miss
	for _, t := range tables {
		err := collectCounters(fsys, s, t.src, fsys.NetPath("stat", t.file), func(r io.Reader) ([]Counter, error) {
			return parseNeighStat(t.src, r)
		})
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, miss{t.src, err})
		default:
			s.Fail(t.src, err)
		}
	}
	if len(missing) == len(tables) {
		s.Unavailable = append(s.Unavailable, Unavailable{
			Source: ProcNetStatARPCache,
			Reason: "neighbour table statistics are host-wide and only visible from the initial network namespace (CollectIn reads them from there for a namespace)",
		})
		return nil
	}
	// One table missing: ndisc_cache when IPv6 is disabled.
	for _, m := range missing {
		s.Fail(m.src, m.err)
	}
	return nil
}

// parseNeighStat reads a neighbour table's statistics by its header line
// (net/core/neighbour.c, neigh_stat_seq_show). entries is the table's size
// printed on every CPU's line and is taken once; the other columns are
// per-CPU event counts and are summed.
func parseNeighStat(source SourceID, r io.Reader) ([]Counter, error) {
	t, err := parsePerCPUStat(r)
	return statCounters(source, t, true, "entries"), err
}
