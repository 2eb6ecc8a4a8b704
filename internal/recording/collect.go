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
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		iv, cur, err := read(ctx, o, tr, prevTrace)
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
func read(ctx context.Context, o CollectOptions, tr *droptrace.Tracer, prev *droptrace.Snapshot) (iv Interval, cur *droptrace.Snapshot, err error) {
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
	if o.Sockets {
		sum, err := sockets.Summarize(ctx, sockets.Options{Netns: o.Netns.Spec(), Owners: true, Top: -1})
		if err != nil {
			snap.Fail(diagnose.SourceSockDiag, err)
		} else {
			iv.Sockets = sum
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
