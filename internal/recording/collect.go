package recording

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
	"golang.org/x/sys/unix"
)

// CollectOptions says what Collect reads, how often and for how long.
type CollectOptions struct {
	Netns    counters.Target
	Interval time.Duration
	// Duration ends the recording after that long; 0 records until the
	// context ends.
	Duration time.Duration
	// Trace runs the drop tracer for the whole recording and writes its
	// rows of each interval; starting it must succeed.
	Trace bool
	// Sockets writes the sock_diag view of each interval.
	Sockets bool
	// Progress, if set, is called after each interval is written.
	Progress func(Progress)
}

// Progress is where a recording stands.
type Progress struct {
	Intervals int
	// Bytes is the size of the current file; Rotations how many files
	// were rotated out before it.
	Bytes     int64
	Rotations int
	Last      time.Time
}

// NewHeader fills a header with what says where a recording is made: the
// host name and kernel release of this machine.
func NewHeader(o CollectOptions, build string) Header {
	h := Header{Netdrop: build, Netns: o.Netns.Spec(), Started: time.Now().UTC(), Interval: Duration(o.Interval), Trace: o.Trace, Sockets: o.Sockets}
	h.Host, h.Kernel = HostKernel()
	return h
}

// HostKernel names this machine as a header does: the host name and the
// kernel release (uname -r).
func HostKernel() (host, kernel string) {
	host, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	return host, kernel
}

// Collect reads the evidence o asks for every o.Interval and writes it to
// w until o.Duration has passed or ctx ends (which is not an error: the
// recording is complete up to then). The first interval is read at once.
func Collect(ctx context.Context, w *Writer, o CollectOptions) error {
	var tr *droptrace.Tracer
	if o.Trace {
		ns := o.Netns.Path()
		if ns == "" {
			ns = "/proc/self/ns/net"
		}
		var err error
		if tr, err = droptrace.Start(ctx, droptrace.Options{Netns: ns}); err != nil {
			return fmt.Errorf("start the drop tracer: %w", err)
		}
		defer tr.Close()
	}
	start := time.Now()
	var end time.Time
	if o.Duration > 0 {
		end = start.Add(o.Duration)
	}
	var prevTrace *droptrace.Snapshot
	owners := ownerCache{}
	pace := &socketPacer{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		iv, cur, err := read(ctx, o, tr, prevTrace, owners, pace)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		prevTrace = cur
		if err := w.Write(iv); err != nil {
			return err
		}
		if o.Progress != nil {
			o.Progress(Progress{Intervals: n + 1, Bytes: w.Size(), Rotations: w.Rotations(), Last: iv.Time})
		}
		// The next reading is due on the grid start + k·Interval, so
		// the time a reading takes does not add up into drift.
		next := start.Add(time.Duration(n+1) * o.Interval)
		if !end.IsZero() && next.After(end) {
			return nil
		}
		timer.Reset(time.Until(next))
	}
}

// read takes one interval's evidence. cur is the tracer's snapshot to
// subtract next time (prev again when this reading failed).
func read(ctx context.Context, o CollectOptions, tr *droptrace.Tracer, prev *droptrace.Snapshot, owners ownerCache, pace *socketPacer) (iv Interval, cur *droptrace.Snapshot, err error) {
	snap, err := counters.CollectIn(ctx, o.Netns, counters.Options{})
	if err != nil {
		return Interval{}, prev, err
	}
	iv = Interval{Time: snap.Time, Counters: snap}
	cur = prev
	if tr != nil {
		// Read right after the counters, so both cover the same stretch.
		s, err := tr.Snapshot()
		switch {
		case err != nil:
			snap.Fail(diagnose.SourceTracer, err)
		case prev != nil:
			d := droptrace.Delta(*prev, s)
			iv.Trace = &d
			cur = &s
		default:
			cur = &s
		}
	}
	if o.Sockets && !pace.due(time.Now()) {
		iv.Sockets, iv.SocketsAt = pace.view, pace.at
	} else if o.Sockets {
		t0 := time.Now()
		sum, err := sockets.Summarize(ctx, sockets.Options{Netns: o.Netns, Top: -1})
		pace.read(t0, time.Since(t0), sum)
		if err != nil {
			snap.Fail(diagnose.SourceSockDiag, err)
		} else {
			if err := owners.name(sum); err != nil {
				sum.Unavailable = append(sum.Unavailable, err.Error())
			}
			iv.Sockets, iv.SocketsAt = sum, t0
			for _, u := range sum.Unavailable {
				snap.Unavailable = append(snap.Unavailable, counters.Unavailable{Source: diagnose.SourceSockDiag, Reason: u})
			}
		}
	}
	return iv, cur, nil
}

// WriteObserved writes the evidence of one diagnosis as a recording of two
// intervals (its two snapshots, the tracer's count between them), from
// which `netdrop diagnose --from` gives the same diagnosis back: what
// `netdrop lab run --keep-record` leaves of each scenario.
func WriteObserved(path string, h Header, o diagnose.Observed) error {
	h.Started = o.Before.Time.UTC()
	h.Interval = Duration(o.After.Time.Sub(o.Before.Time))
	h.Trace = o.Trace != nil
	h.Sockets = o.SocketsAfter != nil
	w, err := Create(path, h, Options{})
	if err != nil {
		return err
	}
	err = w.Write(Interval{Time: o.Before.Time, Counters: o.Before, Sockets: o.SocketsBefore})
	if err == nil {
		err = w.Write(Interval{Time: o.After.Time, Counters: o.After, Sockets: o.SocketsAfter, Trace: o.Trace})
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// ownerCache remembers which processes own the sockets of the view, by
// socket inode, from one interval to the next. Naming owners walks every
// file descriptor of every process; done each second it cost more than the
// rest of a recording with --sockets together (1.4% of a core against
// 0.5% on a quiet host), so the walk runs only when a listener or a socket
// under pressure appears that was not named before.
type ownerCache map[uint32][]sockets.Process

// name fills the processes of sum's listeners and pressured sockets.
func (c ownerCache) name(sum *sockets.Summary) error {
	want := map[uint32]bool{}
	for _, l := range sum.Listeners {
		want[l.Inode] = true
	}
	for _, p := range sum.Pressure {
		want[p.Inode] = true
	}
	delete(want, 0)
	missing := false
	for ino := range c {
		if !want[ino] {
			delete(c, ino) // gone from the view: an inode may come back for another socket
		}
	}
	for ino := range want {
		if _, ok := c[ino]; !ok {
			missing = true
		}
	}
	var err error
	if missing {
		scan, serr := sockets.ScanOwners("/proc", sockets.ProcessFilter{}, func(ino uint32) bool { return want[ino] })
		if serr != nil {
			return serr
		}
		for ino := range want {
			if _, ok := c[ino]; !ok {
				c[ino] = scan.Owners[ino] // nil: looked up, no owner found
			}
		}
		if scan.Unreadable > 0 {
			err = fmt.Errorf("process lookup: %d of %d processes could not be read (exited, or not root)", scan.Unreadable, scan.Processes)
		}
	}
	for i := range sum.Listeners {
		sum.Listeners[i].Processes = c[sum.Listeners[i].Inode]
	}
	for i := range sum.Pressure {
		sum.Pressure[i].Processes = c[sum.Pressure[i].Inode]
	}
	return err
}

// socketBudget is the share of one core the socket view may take. A
// sock_diag dump walks every socket of the namespace in the kernel: a few
// milliseconds on a quiet host, a tenth of a second with forty thousand
// sockets in TIME_WAIT, which at one reading a second would cost a tenth
// of a core. Within the budget the view is read every interval; beyond it,
// less often, and the intervals between carry the last view with the time
// it was read.
const socketBudget = 0.01

// socketPacer decides when the socket view is read again.
type socketPacer struct {
	view *sockets.Summary
	at   time.Time
	next time.Time
}

// due reports whether a view should be read at now.
func (p *socketPacer) due(now time.Time) bool { return p.view == nil || !now.Before(p.next) }

// read notes a view read at t0 that took cost (nil: it failed, try again
// next interval).
func (p *socketPacer) read(t0 time.Time, cost time.Duration, view *sockets.Summary) {
	p.view, p.at = view, t0
	p.next = t0.Add(time.Duration(float64(cost) / socketBudget))
}
