package counters

import (
	"context"
	"io"
	"strconv"
	"strings"
)

// /proc/stat's cpuN lines give each CPU's time by kind. The softirq share
// of a CPU's time tells diagnose whether one CPU is saturated by packet
// processing. Host-wide.

func init() { register(CPUStatSource{}) }

// CPUStatSource reads per-CPU time from /proc/stat: Object "cpu0", fields
// "softirq", "irq", "idle" (idle and iowait) and "total", in USER_HZ ticks.
type CPUStatSource struct{}

// ID implements Source.
func (CPUStatSource) ID() SourceID { return ProcStat }

// Collect implements Source.
func (CPUStatSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fs := r.FS
	var cpus int
	err := collectCounters(fs, s, ProcStat, fs.ProcPath("stat"), func(r io.Reader) ([]Counter, error) {
		ts, err := parseCPUStat(r)
		cpus = len(ts)
		return cpuStatCounters(ts), err
	})
	setCPUs(s, cpus)
	return err
}

// cpuTime is one cpuN line.
type cpuTime struct {
	CPU          string // "cpu0"
	IRQ, Softirq uint64
	// Idle is idle and iowait: time the CPU had nothing to run.
	Idle  uint64
	Total uint64
}

// parseCPUStat reads the cpuN lines of /proc/stat (fs/proc/stat.c): user
// nice system idle iowait irq softirq steal guest guest_nice. Kernels before
// 2.6.11 lack steal and before 2.6.24 guest; irq and softirq (columns 6 and
// 7) are needed. The total is the sum of the first eight columns: guest and
// guest_nice are already counted in user and nice. The aggregate "cpu" line
// and the other lines are ignored.
func parseCPUStat(r io.Reader) ([]cpuTime, error) {
	var out []cpuTime
	buf := getFields()
	defer func() { putFields(buf) }()
	err := scanLines(r, func(n int, line string) error {
		f := appendFields(buf[:0], line)
		buf = f
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			return nil
		}
		if _, err := strconv.Atoi(f[0][3:]); err != nil {
			return lineError(n, "%q is not cpuN", f[0])
		}
		if len(f) < 8 {
			return lineError(n, "%s: %d columns, want at least 7 (up to softirq)", f[0], len(f)-1)
		}
		t := cpuTime{CPU: f[0]}
		for i, s := range f[1:] {
			if i >= 8 {
				break
			}
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return lineError(n, "%s: column %d: %q is not a number", f[0], i+1, s)
			}
			t.Total += v
			switch i {
			case 3, 4:
				t.Idle += v
			case 5:
				t.IRQ = v
			case 6:
				t.Softirq = v
			}
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

func cpuStatCounters(ts []cpuTime) []Counter {
	out := make([]Counter, 0, 4*len(ts))
	for _, t := range ts {
		for _, f := range []struct {
			name string
			v    uint64
		}{{"softirq", t.Softirq}, {"irq", t.IRQ}, {"idle", t.Idle}, {"total", t.Total}} {
			out = append(out, Counter{Source: ProcStat, Object: t.CPU, Field: f.name, Value: f.v, HostWide: true})
		}
	}
	return out
}
