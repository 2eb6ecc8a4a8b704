package counters

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// maxLine is the longest line scanLines accepts. /proc/interrupts lines
// grow with the CPU count (11 bytes per CPU): allow very wide machines.
const maxLine = 4 * 1024 * 1024

// lineBufs holds read buffers for scanLines, so that reading a file
// allocates only the text it keeps. Safe across goroutines: a buffer is one
// scanLines call's from Get to Put, and the lines it hands out are cut
// from a string copied out of it. (Why pooled: see dumpBufs.)
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16*1024); return &b }}

// scanLines calls fn for every line of r with its 1-based number, without
// the newline (and a carriage return before it). Errors from fn are
// collected and parsing goes on; a read error stops it. It reads r in
// large chunks and turns each chunk into one string that the lines are
// cut from, so a line costs no allocation of its own (bufio.Scanner's
// Text costs one per line).
func scanLines(r io.Reader, fn func(n int, line string) error) error {
	bp := lineBufs.Get().(*[]byte)
	defer lineBufs.Put(bp)
	buf := (*bp)[:0]
	var errs []error
	n := 0
	tooLong := func() error { return fmt.Errorf("%w: after line %d: %w", ErrFileParse, n, bufio.ErrTooLong) }
	// emit hands over the lines of text; false when one is too long.
	emit := func(text string) bool {
		for text != "" {
			line, rest, _ := strings.Cut(text, "\n")
			if len(line) > maxLine {
				errs = append(errs, tooLong())
				return false
			}
			text = rest
			n++
			line = strings.TrimSuffix(line, "\r")
			if err := fn(n, line); err != nil {
				errs = append(errs, err)
			}
		}
		return true
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > maxLine {
				errs = append(errs, tooLong())
				break
			}
			buf = slices.Grow(buf, cap(buf))
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if len(buf) > 0 && !emit(string(buf)) {
				break
			}
			if err != io.EOF {
				errs = append(errs, fmt.Errorf("%w: after line %d: %w", ErrFileParse, n, err))
			}
			break
		}
		// Hand over the complete lines; keep the partial last one.
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 && len(buf) == cap(buf) {
			if !emit(string(buf[:i+1])) {
				break
			}
			buf = buf[:copy(buf, buf[i+1:])]
		}
	}
	*bp = buf[:0]
	return errors.Join(errs...)
}

// fieldBufs holds arrays for appendFields, for the parsers that split
// long lines (an SNMP header has over a hundred fields). An array is one
// parser's from getFields to putFields, which clears it so that a pooled
// array keeps no file's text alive. (Why pooled: see dumpBufs.)
var fieldBufs = sync.Pool{New: func() any { b := make([]string, 0, 256); return &b }}

// getFields returns an empty array from fieldBufs.
func getFields() []string { return (*fieldBufs.Get().(*[]string))[:0] }

// putFields returns b to fieldBufs, without the strings it pointed to.
func putFields(b []string) {
	clear(b[:cap(b)])
	b = b[:0]
	fieldBufs.Put(&b)
}

// isSpace is the ASCII white space of strings.Fields.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// appendFields appends the white-space separated fields of s to dst, as
// strings.Fields splits them, reusing dst's array: the parsers call it
// once per line with the same slice.
func appendFields(dst []string, s string) []string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			// Not ASCII: leave Unicode white space to strings.
			return append(dst, strings.Fields(s)...)
		}
	}
	i := 0
	for i < len(s) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		j := i
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		if j > i {
			dst = append(dst, s[i:j])
		}
		i = j
	}
	return dst
}

// readSource opens path and hands it to parse. Open errors are returned as
// they are (so fs.ErrNotExist and fs.ErrPermission stay detectable); parse
// errors are named after the file's display name.
func readSource[T any](fs FS, name SourceID, path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := fs.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	return v, fileError(string(name), err)
}

// collectCounters reads one file of counters into s. A file that could not be
// opened or that gave nothing returns the error, for the caller to record;
// a file that gave some counters and some errors adds the counters and
// records the errors, so one malformed line costs only itself. The files
// it reads are seq_files of short records (a whole file, or one line per
// CPU), read through seqFileReader.
func collectCounters(fs FS, s *Snapshot, name SourceID, path string, parse func(io.Reader) ([]Counter, error)) error {
	cs, err := readSource(fs, name, path, func(r io.Reader) ([]Counter, error) {
		return parse(&seqFileReader{r: r})
	})
	if len(cs) == 0 {
		if err == nil {
			return fileError(string(name), fmt.Errorf("%w: no values", ErrFileParse))
		}
		return err
	}
	s.adopt(cs)
	if err != nil {
		s.Fail(name, err)
	}
	return nil
}

// collectCountersFrom is collectCounters for a file already read (once
// per snapshot, for several sources): read returns its bytes or the error
// opening it.
func collectCountersFrom(s *Snapshot, name SourceID, read func() ([]byte, error), parse func(io.Reader) ([]Counter, error)) error {
	b, err := read()
	if err != nil {
		return err
	}
	cs, err := parse(bytes.NewReader(b))
	err = fileError(string(name), err)
	if len(cs) == 0 {
		if err == nil {
			return fileError(string(name), fmt.Errorf("%w: no values", ErrFileParse))
		}
		return err
	}
	s.adopt(cs)
	if err != nil {
		s.Fail(name, err)
	}
	return nil
}

// seqShortRead is the longest read of a seq_file that still proves the
// end of the file; see seqFileReader.
const seqShortRead = 4096 - 1024

// seqFileReader reads a /proc file made by seq_file (fs/seq_file.c,
// seq_read_iter) and spares the read that would return 0 at its end: a
// system call per file, and for /proc/net/udp and udp6 a walk of the
// whole UDP hash table (udp_get_idx) only to find nothing past the last
// socket. seq_read_iter fills the reader's buffer from a kernel buffer of
// at least a page and returns less than asked only at the end of the
// records or when the next record does not fit in that page; so a read
// shorter than asked that leaves more room in the page than any record
// takes ended the file. That holds for files printed as one record
// (single_open: snmp, netstat, sockstat, /proc/stat, softirqs) and for
// files of short lines (udp, softnet_stat, the per-CPU stat tables, under
// 200 bytes a line); not for /proc/interrupts, whose lines grow with the
// CPU count. Longer reads and reads that filled the buffer go on as usual.
type seqFileReader struct {
	r   io.Reader
	eof bool
}

func (s *seqFileReader) Read(p []byte) (int, error) {
	if s.eof {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if err == nil && n > 0 && n < len(p) && n <= seqShortRead {
		s.eof = true
	}
	return n, err
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
	buf := getFields()
	defer func() { putFields(buf) }()
	err := scanLines(r, func(n int, line string) error {
		fields := appendFields(buf[:0], line)
		buf = fields
		if len(fields) == 0 {
			return nil
		}
		if t.Names == nil {
			values := 0
			for _, f := range fields {
				if len(f) == 8 && isHex(f) {
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
			t.Names = slices.Clone(fields)
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

// isHex reports whether s is all hex digits, as strconv.ParseUint(s, 16,
// 64) would accept an 8-digit s, without the error ParseUint allocates for
// the names of a header line.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
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
func statCounters(source SourceID, t perCPUStat, hostWide bool, levels ...string) []Counter {
	if len(t.Rows) == 0 {
		return nil
	}
	sums := t.sums(levels...)
	out := make([]Counter, 0, len(t.Names))
	for _, name := range t.Names {
		fi, _ := LookupCounter(source, name)
		out = append(out, Counter{
			Source: source, Field: name, Value: sums[name],
			Stage: fi.Stage, Gauge: fi.Gauge, HostWide: hostWide,
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

// cpuNames are "cpu0" … as the per-CPU counters name their CPU, made on
// first use.
var cpuNames = sync.OnceValue(func() []string {
	out := make([]string, 256)
	for i := range out {
		out[i] = "cpu" + strconv.Itoa(i)
	}
	return out
})

// cpuName returns "cpuN".
func cpuName(n int) string {
	if names := cpuNames(); n >= 0 && n < len(names) {
		return names[n]
	}
	return "cpu" + strconv.Itoa(n)
}
