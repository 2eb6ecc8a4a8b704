package droptrace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrKallsymsHidden means /proc/kallsyms shows every address as zero:
// kernel.kptr_restrict hides them from this process (not root, or
// kptr_restrict=2).
var ErrKallsymsHidden = errors.New("/proc/kallsyms addresses are hidden (kernel.kptr_restrict)")

// Symbols is the kernel's text symbol table, sorted by address, for turning
// a drop location into function+offset. It is read once and cached: reading
// /proc/kallsyms costs tens of milliseconds, far too much per row.
type Symbols struct {
	addrs  []uint64
	names  []string
	module []string
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
	type ent struct {
		addr      uint64
		name, mod string
	}
	var ents []ent
	nonzero := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("kallsyms line %d: want address, type and name, got %q", line, sc.Text())
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms line %d: bad address %q", line, f[0])
		}
		switch f[1] {
		case "t", "T", "w", "W":
		default:
			continue
		}
		if addr != 0 {
			nonzero = true
		}
		e := ent{addr: addr, name: f[2]}
		if len(f) > 3 {
			e.mod = strings.Trim(f[3], "[]")
		}
		ents = append(ents, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading kallsyms: %w", err)
	}
	if len(ents) == 0 {
		return nil, errors.New("kallsyms has no text symbols")
	}
	if !nonzero {
		return nil, ErrKallsymsHidden
	}
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].addr < ents[j].addr })
	s := &Symbols{
		addrs:  make([]uint64, len(ents)),
		names:  make([]string, len(ents)),
		module: make([]string, len(ents)),
	}
	for i, e := range ents {
		s.addrs[i], s.names[i], s.module[i] = e.addr, e.name, e.mod
	}
	return s, nil
}

// Resolve returns the symbol containing addr: the nearest symbol at or below
// it. ok is false for an address below the first symbol.
func (s *Symbols) Resolve(addr uint64) (Sym, bool) {
	if s == nil || len(s.addrs) == 0 {
		return Sym{}, false
	}
	i := sort.Search(len(s.addrs), func(i int) bool { return s.addrs[i] > addr }) - 1
	if i < 0 {
		return Sym{}, false
	}
	return Sym{Name: s.names[i], Offset: addr - s.addrs[i], Module: s.module[i]}, true
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
	})
	return kallsymsSyms, kallsymsErr
}
