package counters

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
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

// openDir opens a directory of the FS for use with openat.
func (f FS) openDir(path string) (int, error) {
	return openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
}

// openat is openat(2), retried on EINTR.
func openat(dir int, path string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dir, path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
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
// poller. It starts with a page-sized buffer: a seq_file such as
// /proc/interrupts fills each read up to a page, and io.ReadAll's first
// reads of 512 bytes and up would each make the kernel format the file's
// records again from the last position.
func (f FS) ReadFile(path string) ([]byte, error) {
	r, err := f.Open(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, 0, 4096)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
	}
}

// Source is one kernel source of counters: a /proc file, a netlink dump,
// an ioctl. Collect adds what it read to s and returns an error only when
// nothing could be read; partial failures are recorded with s.Fail. r is
// the snapshot being read: where files are, and the reads its sources
// share.
type Source interface {
	// ID is the source as counters and the unavailable list name it.
	ID() SourceID
	Collect(ctx context.Context, r *Reading, s *Snapshot) error
}

// Reading is one snapshot of one namespace being read, as its sources see
// it: where kernel files are, and the reads several sources need but the
// snapshot makes once. The RTM_GETLINK dump is the start of the link
// statistics, the NIC layout, ethtool, the qdisc names and the hooks;
// /proc/interrupts gives the interrupt counters and the NIC IRQ names. The
// first source to ask reads, inside the namespace its worker entered; the
// others wait for that read and share what it returned, which they must
// not modify.
//
// Collect makes one Reading per snapshot and passes it to every source; a
// caller that reads one source on its own makes one with NewReading.
type Reading struct {
	// FS is where kernel files are read from.
	FS FS
	// Kept, when set, keeps the files and sockets that are costly to
	// open (the conntrack sysctls, the netlink sockets of the dumps)
	// open for the next reading of the same namespace; nil opens and
	// closes them each time.
	Kept       *KeptFiles
	dial       dialer
	links      func() ([]linkInfo, error)
	qdiscs     func() ([]netlink.Qdisc, error)
	interrupts func() ([]byte, error)
}

// NewReading starts the reading of one snapshot from fs (the running
// kernel when fs is the zero FS). Use it for one snapshot only: the shared
// reads are made once, in the namespace of the first source that asks.
func NewReading(fs FS) *Reading { return newReading(fs, dialRaw) }

// newReading is NewReading with the netlink sockets from dial: tests
// pass a fake kernel.
func newReading(fs FS, dial dialer) *Reading {
	if fs == (FS{}) {
		fs = DefaultFS()
	}
	r := &Reading{
		FS:         fs,
		dial:       dial,
		interrupts: sync.OnceValues(func() ([]byte, error) { return fs.ReadFile(fs.ProcPath("interrupts")) }),
	}
	// The dumps ask r for the dialer when they run, so that Kept, set
	// after NewReading, applies to them.
	r.links = sync.OnceValues(func() ([]linkInfo, error) { return dumpLinks(r.dialer()) })
	r.qdiscs = sync.OnceValues(func() ([]netlink.Qdisc, error) { return dumpQdiscs(r.dialer()) })
	return r
}

// dialer returns how the sources of this snapshot open netlink sockets:
// through Kept's sockets when it is set.
func (r *Reading) dialer() dialer {
	dial := r.dial
	if dial == nil {
		dial = dialRaw
	}
	if r.Kept != nil {
		return r.Kept.dialer(dial)
	}
	return dial
}

// linkDump returns the snapshot's RTM_GETLINK dump. A Reading not made by
// NewReading dumps afresh on every call.
func (r *Reading) linkDump() ([]linkInfo, error) {
	if r.links == nil {
		return dumpLinks(r.dialer())
	}
	return r.links()
}

// qdiscDump returns the snapshot's RTM_GETQDISC dump: the qdisc source's
// statistics and the hooks source's ingress and clsact qdiscs. A Reading
// not made by NewReading dumps afresh on every call.
func (r *Reading) qdiscDump() ([]netlink.Qdisc, error) {
	if r.qdiscs == nil {
		return dumpQdiscs(r.dialer())
	}
	return r.qdiscs()
}

// interruptsText returns the snapshot's /proc/interrupts. A Reading not
// made by NewReading reads it afresh on every call.
func (r *Reading) interruptsText() ([]byte, error) {
	if r.interrupts == nil {
		return r.FS.ReadFile(r.FS.ProcPath("interrupts"))
	}
	return r.interrupts()
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
	// Workers is the number of parallel readers with Enter; 0 means 3,
	// or the number of CPUs Go uses when that is smaller.
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
	r := NewReading(opts.FS)
	s := &Snapshot{Time: time.Now(), Netns: opts.Netns, Sysctls: map[string]string{}}
	if opts.Enter == nil {
		for _, src := range srcs {
			readSourceInto(ctx, r, src, s)
		}
		return s
	}
	// In parallel: each source fills a snapshot of its own (sources are
	// not safe for concurrent use of one snapshot), merged afterwards in
	// source order so the result does not depend on scheduling. Sources
	// are handed out slowest first, so that no worker starts a long read
	// when the others are about to finish.
	parts := make([]Snapshot, len(srcs))
	next := make(chan int, len(srcs))
	for _, i := range slowestFirst(srcs) {
		next <- i
	}
	close(next)
	workers := opts.Workers
	if workers <= 0 {
		// More readers than CPUs only adds thread wake-ups, which
		// are dear in a virtual machine (an IPI each).
		workers = min(3, runtime.GOMAXPROCS(0))
	}
	if workers > len(srcs) {
		workers = len(srcs)
	}
	work := func() {
		err := opts.Enter(func() error {
			for i := range next {
				readSourceInto(ctx, r, srcs[i], &parts[i])
			}
			return nil
		})
		if err != nil {
			// Entering failed: say so for every source this
			// worker would have read.
			for i := range next {
				parts[i].Fail(srcs[i].ID(), err)
			}
		}
	}
	// Every worker is a goroutine of its own, never the caller: Enter
	// leaves a thread it could not bring back from the namespace locked,
	// for the runtime to discard when the goroutine ends.
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	// The caller waits at once, so that the first worker runs on its
	// thread without waiting for another to wake up (on an idle virtual
	// machine the second CPU can take most of a snapshot to wake).
	wg.Wait()
	n := 0
	for i := range parts {
		n += len(parts[i].Counters)
	}
	s.Counters = make([]Counter, 0, n)
	for i := range parts {
		s.merge(&parts[i])
	}
	return s
}

// readOrder lists the sources that take longest to read, slowest first,
// as measured by BenchmarkCollectEach; the others follow in registry
// order. Only the parallel path uses it: a wrong guess costs some
// parallelism, never a counter.
var readOrder = []SourceID{
	NetlinkLinkStats, ProcSys, ProcNetSNMP, EthtoolStats, ProcInterrupts,
	NetlinkNftables, NetlinkQdisc, ProcNetUDP,
}

// slowestFirst returns the indexes of srcs in the order to read them.
func slowestFirst(srcs []Source) []int {
	rank := func(src Source) int {
		for r, name := range readOrder {
			if src.ID() == name {
				return r
			}
		}
		return len(readOrder)
	}
	out := make([]int, len(srcs))
	for i := range out {
		out[i] = i
	}
	slices.SortStableFunc(out, func(a, b int) int { return rank(srcs[a]) - rank(srcs[b]) })
	return out
}

// readSourceInto reads one source into s, turning its failure into an
// Unavailable entry.
func readSourceInto(ctx context.Context, r *Reading, src Source, s *Snapshot) {
	if err := ctx.Err(); err != nil {
		s.Fail(src.ID(), err)
		return
	}
	if err := src.Collect(ctx, r, s); err != nil {
		s.Fail(src.ID(), err)
	}
}

// merge adds what p read to s. NICs are merged per interface, field by
// field, because two sources (ethtool and the sysfs layout) fill one NIC.
func (s *Snapshot) merge(p *Snapshot) {
	s.Add(p.Counters...)
	s.Unavailable = append(s.Unavailable, p.Unavailable...)
	if len(p.Sysctls) > 0 && s.Sysctls == nil {
		s.Sysctls = make(map[string]string, len(p.Sysctls))
	}
	for k, v := range p.Sysctls {
		s.Sysctls[k] = v
	}
	if p.CPUs > s.CPUs {
		s.CPUs = p.CPUs
	}
	for _, n := range p.NICs {
		mergeNIC(nicEntry(s, n.Name), n)
	}
	s.Hooks = append(s.Hooks, p.Hooks...)
	s.BridgePorts = append(s.BridgePorts, p.BridgePorts...)
}

// mergeNIC fills every field of dst that is unset with src's. A field
// added to NIC needs a line here; TestMergeNICEveryField fails until it
// has one.
func mergeNIC(dst *NIC, src NIC) {
	fill(&dst.Name, src.Name)
	fill(&dst.Driver, src.Driver)
	fill(&dst.RxQueues, src.RxQueues)
	fill(&dst.TxQueues, src.TxQueues)
	fill(&dst.CombinedChannels, src.CombinedChannels)
	fill(&dst.MaxCombinedChannels, src.MaxCombinedChannels)
	fill(&dst.RxChannels, src.RxChannels)
	fill(&dst.MaxRxChannels, src.MaxRxChannels)
	fill(&dst.RxRing, src.RxRing)
	fill(&dst.RxRingMax, src.RxRingMax)
	fill(&dst.TxRing, src.TxRing)
	fill(&dst.TxRingMax, src.TxRingMax)
	fill(&dst.RxUsecs, src.RxUsecs)
	fill(&dst.AdaptiveRx, src.AdaptiveRx)
	fill(&dst.TxQueueLen, src.TxQueueLen)
	if dst.IRQs == nil {
		dst.IRQs = src.IRQs
	}
	if dst.RPSCPUs == nil {
		dst.RPSCPUs = src.RPSCPUs
	}
	if dst.XPSCPUs == nil {
		dst.XPSCPUs = src.XPSCPUs
	}
}

// fill sets *dst to v when *dst is its zero value.
func fill[T comparable](dst *T, v T) {
	var zero T
	if *dst == zero {
		*dst = v
	}
}

// closeFD closes a descriptor from openDir or openat.
func closeFD(fd int) error { return unix.Close(fd) }
