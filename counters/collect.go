package counters

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// FS is where kernel files are read from. Tests point it at testdata/
// fixtures copied from real machines; the defaults read the running kernel.
type FS struct {
	// Proc is the procfs mount, "/proc".
	Proc string
	// ProcNet is the per-namespace /proc/net directory. It defaults to
	// /proc/thread-self/net, not /proc/net: /proc/net follows the thread
	// group leader's namespace, while netdrop reads other namespaces from a
	// single thread that entered them with setns.
	ProcNet string
	// Sys is the sysfs mount, "/sys".
	Sys string
}

// DefaultFS reads the running kernel.
func DefaultFS() FS {
	return FS{Proc: "/proc", ProcNet: "/proc/thread-self/net", Sys: "/sys"}
}

// NewFS reads a fixture tree laid out as root/proc, root/proc/net and root/sys.
func NewFS(root string) FS {
	return FS{
		Proc:    filepath.Join(root, "proc"),
		ProcNet: filepath.Join(root, "proc", "net"),
		Sys:     filepath.Join(root, "sys"),
	}
}

// Path helpers keep hard-coded mount points out of the parsers.

// ProcPath joins p under the procfs root.
func (f FS) ProcPath(p ...string) string { return filepath.Join(append([]string{f.Proc}, p...)...) }

// NetPath joins p under the per-namespace /proc/net.
func (f FS) NetPath(p ...string) string {
	return filepath.Join(append([]string{f.ProcNet}, p...)...)
}

// SysPath joins p under the sysfs root.
func (f FS) SysPath(p ...string) string { return filepath.Join(append([]string{f.Sys}, p...)...) }

// Open opens a file below the FS; it exists so that sources share one error
// shape.
func (f FS) Open(path string) (*os.File, error) { return os.Open(path) }

// Source is one kernel source of counters: a /proc file, a netlink dump,
// an ioctl. Collect adds what it read to s and returns an error only when
// nothing could be read; partial failures are recorded with s.Fail.
type Source interface {
	// Name is the source as shown to users in the unavailable list.
	Name() string
	Collect(ctx context.Context, fs FS, s *Snapshot) error
}

// Options says what to read.
type Options struct {
	FS FS
	// Netns is the label of the namespace being read, for output only; the
	// caller enters the namespace (internal/netns) before calling Collect.
	Netns string
	// Sources replaces the default list (tests).
	Sources []Source
}

// registry holds the sources, in the order of the packet path so the
// snapshot reads naturally. Each source file registers itself in init.
var registry []Source

// register adds a source to the default list; called from init functions of
// the source files.
func register(s Source) { registry = append(registry, s) }

// DefaultSources returns every registered source.
func DefaultSources() []Source {
	out := make([]Source, len(registry))
	copy(out, registry)
	return out
}

// Collect reads every source once. It never fails as a whole: a source that
// cannot be read becomes an Unavailable entry. Counters come in source
// order; call Sort for output (diagnose does not need it, and a snapshot is
// taken on the hot path of every diagnosis and scrape).
func Collect(ctx context.Context, opts Options) *Snapshot {
	if opts.FS == (FS{}) {
		opts.FS = DefaultFS()
	}
	srcs := opts.Sources
	if srcs == nil {
		srcs = registry
	}
	s := &Snapshot{Time: time.Now(), Netns: opts.Netns, Sysctls: map[string]string{}}
	for _, src := range srcs {
		if err := ctx.Err(); err != nil {
			s.Fail(src.Name(), err)
			continue
		}
		if err := src.Collect(ctx, opts.FS, s); err != nil {
			s.Fail(src.Name(), err)
		}
	}
	return s
}
