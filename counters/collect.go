package counters

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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

// Open opens a file below the FS for reading. It goes straight to the
// open(2) and read(2) system calls: an *os.File would also register every
// /proc and /sys file with the runtime's poller (fcntl and epoll_ctl each
// time), which is a third of the cost of reading a small kernel file.
// Errors are *fs.PathError, so fs.ErrNotExist and fs.ErrPermission stay
// detectable with errors.Is.
func (f FS) Open(path string) (io.ReadCloser, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &rawFile{fd: fd, path: path}, nil
	}
}

// rawFile reads a kernel file through its descriptor, without the poller.
type rawFile struct {
	fd   int
	path string
}

func (r *rawFile) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: r.path, Err: err}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (r *rawFile) Close() error { return unix.Close(r.fd) }

// ReadFile reads a whole (small) kernel file, like os.ReadFile without the
// poller.
func (f FS) ReadFile(path string) ([]byte, error) {
	r, err := f.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

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
	// Enter, when set, lets Collect read sources in parallel: each worker
	// goroutine runs inside Enter, which must put its (locked) thread in
	// the namespace to read — internal/netns.Do does. Without it every
	// source is read in turn on the calling goroutine, which is what a
	// caller that has itself entered a namespace needs.
	Enter func(fn func() error) error
	// Workers is the number of parallel readers with Enter; 0 means 3.
	Workers int
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
	if opts.Enter == nil {
		for _, src := range srcs {
			readSourceInto(ctx, opts.FS, src, s)
		}
		return s
	}
	// In parallel: each source fills a snapshot of its own (sources are
	// not safe for concurrent use of one snapshot), merged afterwards in
	// source order so the result does not depend on scheduling.
	parts := make([]*Snapshot, len(srcs))
	next := make(chan int, len(srcs))
	for i := range srcs {
		next <- i
	}
	close(next)
	workers := opts.Workers
	if workers <= 0 {
		workers = 3
	}
	var wg sync.WaitGroup
	for w := 0; w < workers && w < len(srcs); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := opts.Enter(func() error {
				for i := range next {
					parts[i] = &Snapshot{Sysctls: map[string]string{}}
					readSourceInto(ctx, opts.FS, srcs[i], parts[i])
				}
				return nil
			})
			if err != nil {
				// Entering failed: say so for every source this
				// worker would have read.
				for i := range next {
					parts[i] = &Snapshot{}
					parts[i].Fail(srcs[i].Name(), err)
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range parts {
		if p != nil {
			s.merge(p)
		}
	}
	return s
}

// readSourceInto reads one source into s, turning its failure into an
// Unavailable entry.
func readSourceInto(ctx context.Context, fs FS, src Source, s *Snapshot) {
	if err := ctx.Err(); err != nil {
		s.Fail(src.Name(), err)
		return
	}
	if err := src.Collect(ctx, fs, s); err != nil {
		s.Fail(src.Name(), err)
	}
}

// merge adds what p read to s. NICs are merged per interface, field by
// field, because two sources (ethtool and the sysfs layout) fill one NIC.
func (s *Snapshot) merge(p *Snapshot) {
	s.Add(p.Counters...)
	s.Unavailable = append(s.Unavailable, p.Unavailable...)
	for k, v := range p.Sysctls {
		s.Sysctls[k] = v
	}
	if p.CPUs > s.CPUs {
		s.CPUs = p.CPUs
	}
	for _, n := range p.NICs {
		mergeNIC(nicEntry(s, n.Name), n)
	}
}

// mergeNIC copies every field of src that dst has not set. Reflection keeps
// it right when NIC gains fields.
func mergeNIC(dst *NIC, src NIC) {
	dv := reflect.ValueOf(dst).Elem()
	sv := reflect.ValueOf(src)
	for i := 0; i < dv.NumField(); i++ {
		if dv.Field(i).IsZero() && !sv.Field(i).IsZero() {
			dv.Field(i).Set(sv.Field(i))
		}
	}
}
