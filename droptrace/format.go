package droptrace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrFormat wraps every error in parsing a tracefs format file, so callers
// can tell a malformed file from a missing one (fs.ErrNotExist).
var ErrFormat = errors.New("malformed tracefs format file")

// Format is a tracefs events/<system>/<event>/format file: the layout of the
// classic tracepoint record and its print format.
type Format struct {
	Name     string
	ID       int
	Fields   []FormatField
	PrintFmt string
}

// FormatField is one "field:" line of a format file.
type FormatField struct {
	Type   string // C type as the kernel prints it, e.g. "void *"
	Name   string
	Offset int
	Size   int
	Signed bool
}

// Field returns the field called name.
func (f Format) Field(name string) (FormatField, bool) {
	for _, fd := range f.Fields {
		if fd.Name == name {
			return fd, true
		}
	}
	return FormatField{}, false
}

// ParseFormat reads a tracefs format file. It keeps every field, including
// the common_ ones, and the print fmt line verbatim.
func ParseFormat(r io.Reader) (Format, error) {
	var f Format
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024) // print fmt lines are long
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s == "format:":
		case strings.HasPrefix(s, "name:"):
			f.Name = strings.TrimSpace(strings.TrimPrefix(s, "name:"))
		case strings.HasPrefix(s, "ID:"):
			id, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(s, "ID:")))
			if err != nil {
				return Format{}, fmt.Errorf("%w: line %d: bad ID: %w", ErrFormat, line, err)
			}
			f.ID = id
		case strings.HasPrefix(s, "field:"):
			fd, err := parseFormatField(s)
			if err != nil {
				return Format{}, fmt.Errorf("%w: line %d: %w", ErrFormat, line, err)
			}
			f.Fields = append(f.Fields, fd)
		case strings.HasPrefix(s, "print fmt:"):
			f.PrintFmt = strings.TrimSpace(strings.TrimPrefix(s, "print fmt:"))
		}
	}
	if err := sc.Err(); err != nil {
		return Format{}, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if len(f.Fields) == 0 {
		return Format{}, fmt.Errorf("%w: no fields", ErrFormat)
	}
	return f, nil
}

// parseFormatField parses
// "field:void * skbaddr;	offset:8;	size:8;	signed:0;".
func parseFormatField(s string) (FormatField, error) {
	var fd FormatField
	parts := strings.Split(s, ";")
	if len(parts) < 3 {
		return fd, fmt.Errorf("field line %q: want field, offset and size", s)
	}
	decl := strings.TrimSpace(strings.TrimPrefix(parts[0], "field:"))
	// Arrays ("char comm[16]") keep their brackets in the name; the name is
	// the last word of the declaration.
	i := strings.LastIndexAny(decl, " *")
	if i < 0 || i == len(decl)-1 {
		return fd, fmt.Errorf("field declaration %q has no name", decl)
	}
	fd.Name = decl[i+1:]
	fd.Type = strings.TrimSpace(decl[:i+1])
	seenOff, seenSize := false, false
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), ":")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fd, fmt.Errorf("field %s: bad %s %q", fd.Name, k, v)
		}
		switch k {
		case "offset":
			fd.Offset, seenOff = n, true
		case "size":
			fd.Size, seenSize = n, true
		case "signed":
			fd.Signed = n != 0
		}
	}
	if !seenOff || !seenSize {
		return fd, fmt.Errorf("field %s: offset or size missing", fd.Name)
	}
	return fd, nil
}

// Layout is where the classic kfree_skb record keeps what the tracer reads.
// Protocol, Reason and RxSk are -1 on kernels whose record lacks them
// (reason came in 5.17, rx_sk in 6.11).
type Layout struct {
	Skbaddr  int
	Location int
	Protocol int
	Reason   int
	RxSk     int
}

// maxRecord bounds offsets: a tracepoint record is at most a page.
const maxRecord = 4096

// KfreeSkbLayout finds the record offsets of skb:kfree_skb in f. The layout
// moved twice: 5.17 appended reason (offset 28) and 6.11 inserted rx_sk
// after location, moving protocol to 32 and reason to 36; very old kernels
// put protocol before location. Reading the offsets from the format file
// covers all of them without a kernel version check.
func KfreeSkbLayout(f Format) (Layout, error) {
	l := Layout{Protocol: -1, Reason: -1, RxSk: -1}
	want := func(name string, size int) (int, error) {
		fd, ok := f.Field(name)
		if !ok {
			return -1, fmt.Errorf("%w: kfree_skb has no %s field", ErrFormat, name)
		}
		if fd.Size != size {
			return -1, fmt.Errorf("%w: kfree_skb field %s has size %d, want %d", ErrFormat, name, fd.Size, size)
		}
		if fd.Offset+fd.Size > maxRecord {
			return -1, fmt.Errorf("%w: kfree_skb field %s at offset %d is outside the record", ErrFormat, name, fd.Offset)
		}
		return fd.Offset, nil
	}
	var err error
	if l.Skbaddr, err = want("skbaddr", 8); err != nil {
		return Layout{}, err
	}
	if l.Location, err = want("location", 8); err != nil {
		return Layout{}, err
	}
	if _, ok := f.Field("protocol"); ok {
		if l.Protocol, err = want("protocol", 2); err != nil {
			return Layout{}, err
		}
	}
	if _, ok := f.Field("rx_sk"); ok {
		if l.RxSk, err = want("rx_sk", 8); err != nil {
			return Layout{}, err
		}
	}
	if _, ok := f.Field("reason"); ok {
		if l.Reason, err = want("reason", 4); err != nil {
			return Layout{}, err
		}
	}
	return l, nil
}

// PrintSymbolic returns the value -> name table of
// __print_symbolic(REC-><field>, { v, "NAME" }, …) in a print fmt, the
// fallback source of drop reason names on kernels without BTF. It returns
// an empty map when the print fmt has no such table.
func PrintSymbolic(printFmt, field string) (map[uint64]string, error) {
	marker := "__print_symbolic(REC->" + field + ","
	i := strings.Index(printFmt, marker)
	if i < 0 {
		return map[uint64]string{}, nil
	}
	s := printFmt[i+len(marker):]
	out := map[uint64]string{}
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return nil, fmt.Errorf("%w: __print_symbolic(%s) not closed", ErrFormat, field)
		}
		if s[0] == ')' {
			return out, nil
		}
		if s[0] != '{' {
			return nil, fmt.Errorf("%w: __print_symbolic(%s): unexpected %q", ErrFormat, field, trunc(s, 20))
		}
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: __print_symbolic(%s): unterminated entry", ErrFormat, field)
		}
		entry := s[1:end]
		s = s[end+1:]
		v, name, ok := strings.Cut(entry, ",")
		if !ok {
			return nil, fmt.Errorf("%w: __print_symbolic(%s): entry %q has no name", ErrFormat, field, entry)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: __print_symbolic(%s): value %q: %w", ErrFormat, field, v, err)
		}
		name = strings.TrimSpace(name)
		uq, err := strconv.Unquote(name)
		if err != nil {
			return nil, fmt.Errorf("%w: __print_symbolic(%s): name %s is not a string", ErrFormat, field, name)
		}
		out[n] = uq
	}
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// readKfreeSkbFormat reads events/skb/kfree_skb/format from tracefs.
func readKfreeSkbFormat(root string) (Format, error) {
	roots := []string{root}
	if root == "" {
		roots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}
	}
	var firstErr error
	for _, r := range roots {
		f, err := os.Open(filepath.Join(r, "events/skb/kfree_skb/format"))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		defer f.Close()
		return ParseFormat(f)
	}
	return Format{}, firstErr
}
