package counters

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Helpers shared by the /proc readers (snmp.go, softnet.go, conntrack.go,
// neigh.go, sockstat.go, interrupts.go, cpustat.go, udpsock.go).
//
// The parsers are written to lose as little as possible: a malformed line
// becomes an error wrapping ErrFileParse and naming the line, and parsing
// goes on with the next line. A parser therefore returns what it could read
// together with the joined errors, and the reader records both: the values
// in the snapshot, the error in its unavailable list.

// lineError is a parse error at one line of a kernel file.
func lineError(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrFileParse, line, fmt.Sprintf(format, args...))
}

// fileError names the file an error came from, as a user would read it.
func fileError(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

// scanLines calls fn for every line of r with its 1-based number. Errors
// from fn are collected and parsing goes on; a read error stops it.
func scanLines(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	// /proc/interrupts lines grow with the CPU count (11 bytes per CPU):
	// allow very wide machines.
	sc.Buffer(make([]byte, 0, 4096), 4*1024*1024)
	var errs []error
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%w: after line %d: %w", ErrFileParse, n, err))
	}
	return errors.Join(errs...)
}

// readSource opens path and hands it to parse. Open errors are returned as
// they are (so fs.ErrNotExist and fs.ErrPermission stay detectable); parse
// errors are named after the file's display name.
func readSource[T any](fs FS, name, path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := fs.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	return v, fileError(name, err)
}

// collectCounters reads one file of counters into s. A file that could not be
// opened or that gave nothing returns the error, for the caller to record;
// a file that gave some counters and some errors adds the counters and
// records the errors, so one malformed line costs only itself.
func collectCounters(fs FS, s *Snapshot, name, path string, parse func(io.Reader) ([]Counter, error)) error {
	cs, err := readSource(fs, name, path, parse)
	if len(cs) == 0 {
		if err == nil {
			return fileError(name, fmt.Errorf("%w: no values", ErrFileParse))
		}
		return err
	}
	s.Add(cs...)
	if err != nil {
		s.Fail(name, err)
	}
	return nil
}

// parseSigned reads a decimal counter. The SNMP files print a few signed
// values (Tcp MaxConn is -1 for "no limit"); they are stored as their two's
// complement, as nstat does, because Counter.Value is unsigned.
func parseSigned(s string) (uint64, error) {
	if strings.HasPrefix(s, "-") {
		v, err := strconv.ParseInt(s, 10, 64)
		return uint64(v), err
	}
	return strconv.ParseUint(s, 10, 64)
}

// setCPUs records the number of CPUs seen in a per-CPU file; the largest
// count any file shows wins (softnet_stat omits offline CPUs).
func setCPUs(s *Snapshot, n int) {
	if n > s.CPUs {
		s.CPUs = n
	}
}

// perCPUStat is a /proc/net/stat/* table: a header line naming the columns,
// then one line of hex values per possible CPU.
type perCPUStat struct {
	Names []string
	Rows  [][]uint64
}

// parsePerCPUStat reads a /proc/net/stat/* table by its header line, so
// columns that kernels add, rename or reorder (nf_conntrack's "searched"
// became "clashres") land under the name the kernel gives them. A row with a
// different column count or a value that is not hex is reported and
// skipped; the other rows are kept.
func parsePerCPUStat(r io.Reader) (perCPUStat, error) {
	var t perCPUStat
	err := scanLines(r, func(n int, line string) error {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil
		}
		if t.Names == nil {
			values := 0
			for _, f := range fields {
				if _, err := strconv.ParseUint(f, 16, 64); err == nil && len(f) == 8 {
					values++
				}
			}
			if values == len(fields) {
				return lineError(n, "values before the header line")
			}
			seen := map[string]bool{}
			for _, f := range fields {
				if seen[f] {
					return lineError(n, "column %q named twice", f)
				}
				seen[f] = true
			}
			t.Names = fields
			return nil
		}
		if len(fields) != len(t.Names) {
			return lineError(n, "%d values for %d columns", len(fields), len(t.Names))
		}
		row := make([]uint64, len(fields))
		for i, f := range fields {
			v, err := strconv.ParseUint(f, 16, 64)
			if err != nil {
				return lineError(n, "column %s: %q is not hex", t.Names[i], f)
			}
			row[i] = v
		}
		t.Rows = append(t.Rows, row)
		return nil
	})
	if t.Names == nil && err == nil {
		err = lineError(1, "no header line")
	}
	return t, err
}

// sums adds each column over the CPU rows, except the columns in levels,
// which every row repeats (the table's size) and which are taken from the
// first row.
func (t perCPUStat) sums(levels ...string) map[string]uint64 {
	out := make(map[string]uint64, len(t.Names))
	for i, name := range t.Names {
		level := false
		for _, l := range levels {
			if l == name {
				level = true
			}
		}
		for j, row := range t.Rows {
			if level {
				if j == 0 {
					out[name] = row[i]
				}
				continue
			}
			out[name] += row[i]
		}
	}
	return out
}

// statCounters turns a per-CPU table into counters named as the header
// names the columns, summed over CPUs except the level columns.
func statCounters(source string, t perCPUStat, hostWide bool, levels ...string) []Counter {
	if len(t.Rows) == 0 {
		return nil
	}
	sums := t.sums(levels...)
	out := make([]Counter, 0, len(t.Names))
	for _, name := range t.Names {
		out = append(out, Counter{
			Source: source, Field: name, Value: sums[name],
			Stage: stageOf(source, name), Gauge: isGauge(source, name), HostWide: hostWide,
		})
	}
	return out
}

// parseUintFile reads a file holding one decimal number, as most sysctls do.
func parseUintFile(r io.Reader) (uint64, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, lineError(1, "%q is not a number", s)
	}
	return v, nil
}
