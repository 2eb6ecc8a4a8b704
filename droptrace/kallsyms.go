package droptrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrKallsymsHidden means /proc/kallsyms shows every address as zero: the
// kernel hides them from this process. KernelSymbols wraps it with which
// setting hides them, since the cause differs by sysctl (see hiddenWhy).
var ErrKallsymsHidden = errors.New("/proc/kallsyms addresses are hidden from this process")

// hiddenWhy says what hides kallsyms addresses and what would show them,
// from the two sysctls the kernel's kallsyms_show_value consults:
// kptr_restrict 0 shows them to everyone only while perf_event_paranoid is
// at most 1, otherwise (and at 1) CAP_SYSLOG is needed; 2 hides them even
// from root. A negative value means the sysctl could not be read. Naming
// kptr_restrict alone sent users with kptr_restrict=0 and the default
// perf_event_paranoid=2 looking at the wrong setting.
func hiddenWhy(kptrRestrict, perfParanoid int) string {
	switch {
	case kptrRestrict >= 2:
		return "kernel.kptr_restrict=2 hides them from every process, root included; " +
			"sysctl -w kernel.kptr_restrict=1 lets a process with CAP_SYSLOG see them"
	case kptrRestrict == 1:
		return "kernel.kptr_restrict=1: the process needs CAP_SYSLOG"
	case kptrRestrict == 0 && perfParanoid > 1:
		return fmt.Sprintf("the process needs CAP_SYSLOG: kernel.kptr_restrict=0 shows them without it "+
			"only while kernel.perf_event_paranoid <= 1 (it is %d)", perfParanoid)
	default:
		return "the process needs CAP_SYSLOG (see kernel.kptr_restrict and kernel.perf_event_paranoid)"
	}
}

// readSysctlInt reads an integer sysctl file, or -1 if it cannot.
func readSysctlInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return v
}

// Symbols is the kernel's text symbol table, sorted by address, for turning
// a drop location into function+offset. It is read once and cached: reading
// /proc/kallsyms costs tens of milliseconds, far too much per row. The
// table is compact because a long-running agent keeps it: some 120k
// symbols are 16 bytes each plus their names in one string (about 5 MB),
// where a string and a slice entry per name and module took 30 MB to build.
type Symbols struct {
	syms    []symbol
	names   string   // every name, back to back
	modules []string // module names; symbol.mod indexes it
}

// symbol is one entry of Symbols.
type symbol struct {
	addr    uint64
	nameOff uint32 // into Symbols.names
	nameLen uint16
	mod     uint16 // index into Symbols.modules; 0 is the kernel itself
}

// Sym is one resolved address.
type Sym struct {
	Name   string `json:"function"`
	Offset uint64 `json:"offset"`
	Module string `json:"module,omitempty"`
}

// String prints the symbol as the kernel's %pS does: name+0xoff [module].
func (s Sym) String() string {
	if s.Name == "" {
		return ""
	}
	out := s.Name + "+0x" + strconv.FormatUint(s.Offset, 16)
	if s.Module != "" {
		out += " [" + s.Module + "]"
	}
	return out
}

// ParseKallsyms reads /proc/kallsyms: "address type name [module]". Only
// text symbols (t, T, w, W) are kept, since drop locations and stack entries
// are code addresses.
func ParseKallsyms(r io.Reader) (*Symbols, error) {
	var (
		syms    []symbol
		names   strings.Builder
		modules = []string{""}
		modIdx  = map[string]uint16{"": 0}
	)
	nonzero := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		var f [4][]byte
		n := fields(sc.Bytes(), &f)
		if n == 0 {
			continue
		}
		if n < 3 {
			return nil, fmt.Errorf("kallsyms line %d: want address, type and name, got %q", line, sc.Text())
		}
		addr, err := strconv.ParseUint(string(f[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms line %d: bad address %q", line, f[0])
		}
		if len(f[1]) != 1 || !strings.ContainsRune("tTwW", rune(f[1][0])) {
			continue
		}
		if addr != 0 {
			nonzero = true
		}
		if names.Len()+len(f[2]) > math.MaxUint32 || len(f[2]) > math.MaxUint16 {
			return nil, fmt.Errorf("kallsyms line %d: names too long", line)
		}
		e := symbol{addr: addr, nameOff: uint32(names.Len()), nameLen: uint16(len(f[2]))}
		names.Write(f[2])
		if n > 3 {
			mod := string(bytes.Trim(f[3], "[]"))
			i, ok := modIdx[mod]
			if !ok {
				if len(modules) > math.MaxUint16 {
					return nil, fmt.Errorf("kallsyms line %d: too many modules", line)
				}
				i = uint16(len(modules))
				modules = append(modules, mod)
				modIdx[mod] = i
			}
			e.mod = i
		}
		syms = append(syms, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading kallsyms: %w", err)
	}
	if len(syms) == 0 {
		return nil, errors.New("kallsyms has no text symbols")
	}
	if !nonzero {
		return nil, ErrKallsymsHidden
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	return &Symbols{syms: slices.Clip(syms), names: names.String(), modules: modules}, nil
}

// fields splits a line at spaces and tabs into f, as bytes.Fields would
// without allocating a slice per line, and returns the number of fields
// (which may exceed len(f); the rest are not kept).
func fields(line []byte, f *[4][]byte) int {
	n := 0
	for len(line) > 0 {
		line = bytes.TrimLeft(line, " \t")
		if len(line) == 0 {
			break
		}
		end := bytes.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		if n < len(f) {
			f[n] = line[:end]
		}
		n++
		line = line[end:]
	}
	return n
}

// Resolve returns the symbol containing addr: the nearest symbol at or below
// it. ok is false for an address below the first symbol.
func (s *Symbols) Resolve(addr uint64) (Sym, bool) {
	if s == nil || len(s.syms) == 0 {
		return Sym{}, false
	}
	i := sort.Search(len(s.syms), func(i int) bool { return s.syms[i].addr > addr }) - 1
	if i < 0 {
		return Sym{}, false
	}
	e := s.syms[i]
	name := s.names[e.nameOff : e.nameOff+uint32(e.nameLen)]
	return Sym{Name: name, Offset: addr - e.addr, Module: s.modules[e.mod]}, true
}

var (
	kallsymsOnce sync.Once
	kallsymsSyms *Symbols
	kallsymsErr  error
)

// KernelSymbols reads /proc/kallsyms once per process.
func KernelSymbols() (*Symbols, error) {
	kallsymsOnce.Do(func() {
		f, err := os.Open("/proc/kallsyms")
		if err != nil {
			kallsymsErr = fmt.Errorf("opening kallsyms: %w", err)
			return
		}
		defer f.Close()
		kallsymsSyms, kallsymsErr = ParseKallsyms(f)
		if errors.Is(kallsymsErr, ErrKallsymsHidden) {
			kallsymsErr = fmt.Errorf("%w: %s", kallsymsErr, hiddenWhy(
				readSysctlInt("/proc/sys/kernel/kptr_restrict"),
				readSysctlInt("/proc/sys/kernel/perf_event_paranoid")))
		}
	})
	return kallsymsSyms, kallsymsErr
}
