package counters

import (
	"context"
	"io"
	"strconv"
	"sync"
)

// /proc/net/softnet_stat has one line per online CPU of 32-bit hex counters
// of the receive softirq. It is host-wide: every namespace sees the same
// file.

func init() { register(SoftnetSource{}) }

// SoftnetSource reads /proc/net/softnet_stat. Counters are per CPU (Object
// "cpu3"): processed, dropped, time_squeeze, received_rps, flow_limit_count,
// and the queue lengths backlog_len, input_qlen, process_qlen as gauges, as
// far as the kernel's layout has them.
type SoftnetSource struct{}

// ID implements Source.
func (SoftnetSource) ID() SourceID { return ProcNetSoftnetStat }

// Collect implements Source.
func (SoftnetSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fs := r.FS
	var cpus int
	err := collectCounters(fs, s, ProcNetSoftnetStat, fs.NetPath("softnet_stat"), func(r io.Reader) ([]Counter, error) {
		rows, err := parseSoftnet(r)
		cpus = len(rows)
		return softnetCounters(rows), err
	})
	setCPUs(s, cpus)
	return err
}

// softnetCPU is one line of softnet_stat.
type softnetCPU struct {
	// CPU is column 13 when the layout has it, else the line's index,
	// which is wrong after an offline CPU (the kernel skips those lines).
	CPU            int
	Columns        int
	Processed      uint64
	Dropped        uint64
	TimeSqueeze    uint64
	CPUCollision   uint64
	ReceivedRPS    uint64
	FlowLimitCount uint64
	BacklogLen     uint64
	InputQlen      uint64
	ProcessQlen    uint64
}

// parseSoftnet reads softnet_stat. The layout grew over time
// (net/core/net-procfs.c, softnet_seq_show):
//
//	 9 columns, 2.6.23: processed, dropped, time_squeeze, five zeros, cpu_collision
//	10 columns, 2.6.35: + received_rps
//	11 columns, 3.11:   + flow_limit_count
//	13 columns, 5.10 (7d58e6555870): column 9 always 0, + backlog_len, + CPU index
//	15 columns, 6.4 (59da2d7b0e99):  + input_qlen, + process_qlen
//
// The columns are read by position, so a later kernel that appends columns
// still gives the known ones. Every line must have the first line's width;
// a line that does not, or that holds a value that is not hex, is reported
// and skipped.
func parseSoftnet(r io.Reader) ([]softnetCPU, error) {
	var out []softnetCPU
	width := 0
	index := 0
	buf := getFields()
	defer func() { putFields(buf) }()
	err := scanLines(r, func(n int, line string) error {
		fields := appendFields(buf[:0], line)
		buf = fields
		if len(fields) == 0 {
			return nil
		}
		row := index
		index++
		if len(fields) < 9 {
			return lineError(n, "%d columns, want at least 9", len(fields))
		}
		if width == 0 {
			width = len(fields)
		}
		if len(fields) != width {
			return lineError(n, "%d columns where the first line has %d", len(fields), width)
		}
		v := make([]uint64, len(fields))
		for i, f := range fields {
			x, err := strconv.ParseUint(f, 16, 32)
			if err != nil {
				return lineError(n, "column %d: %q is not a 32-bit hex value", i+1, f)
			}
			v[i] = x
		}
		c := softnetCPU{CPU: row, Columns: len(v), Processed: v[0], Dropped: v[1], TimeSqueeze: v[2]}
		if len(v) < 13 {
			c.CPUCollision = v[8]
		}
		if len(v) >= 10 {
			c.ReceivedRPS = v[9]
		}
		if len(v) >= 11 {
			c.FlowLimitCount = v[10]
		}
		if len(v) >= 12 {
			c.BacklogLen = v[11]
		}
		if len(v) >= 13 {
			c.CPU = int(v[12])
		}
		if len(v) >= 14 {
			c.InputQlen = v[13]
		}
		if len(v) >= 15 {
			c.ProcessQlen = v[14]
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// softnetCounters turns the lines into counters, only the fields the layout
// has, so an old kernel does not show zeros it never counted.
func softnetCounters(rows []softnetCPU) []Counter {
	var out []Counter
	for _, r := range rows {
		obj := cpuName(r.CPU)
		add := func(field string, v uint64) {
			out = append(out, Counter{
				Source: ProcNetSoftnetStat, Object: obj, Field: field, Value: v,
				Stage: softnetInfo(field).Stage, Gauge: softnetInfo(field).Gauge, HostWide: true, Bits: 32,
			})
		}
		add("processed", r.Processed)
		add("dropped", r.Dropped)
		add("time_squeeze", r.TimeSqueeze)
		if r.Columns < 13 {
			add("cpu_collision", r.CPUCollision)
		}
		if r.Columns >= 10 {
			add("received_rps", r.ReceivedRPS)
		}
		if r.Columns >= 11 {
			add("flow_limit_count", r.FlowLimitCount)
		}
		if r.Columns >= 12 {
			add("backlog_len", r.BacklogLen)
		}
		if r.Columns >= 14 {
			add("input_qlen", r.InputQlen)
		}
		if r.Columns >= 15 {
			add("process_qlen", r.ProcessQlen)
		}
	}
	return out
}

// softnetFields is what the catalog says of each softnet_stat column,
// looked up once rather than for every CPU (on first use: it reads the
// catalog, which package init does not build).
var softnetFields = sync.OnceValue(func() map[string]FieldInfo {
	m := map[string]FieldInfo{}
	for _, f := range []string{"processed", "dropped", "time_squeeze", "cpu_collision", "received_rps",
		"flow_limit_count", "backlog_len", "input_qlen", "process_qlen"} {
		m[f], _ = LookupCounter(ProcNetSoftnetStat, f)
	}
	return m
})

// softnetInfo returns the catalog entry of a softnet_stat column.
func softnetInfo(field string) FieldInfo {
	if fi, ok := softnetFields()[field]; ok {
		return fi
	}
	fi, _ := LookupCounter(ProcNetSoftnetStat, field)
	return fi
}
