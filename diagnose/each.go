package diagnose

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/sockets"
)

// Each is one namespace's part of RunEach: its report, or why it could
// not be diagnosed (the namespace went away, it may not be entered).
type Each struct {
	Netns  counters.Target
	Report *Report
	Err    error
}

// RunEach diagnoses several namespaces over one shared interval, as Run
// diagnoses one: every namespace's first snapshot, one wait, every
// namespace's second snapshot, and each pair analysed alone. Waiting once
// keeps a host of 200 namespaces at one interval, not 200. One tracer
// watches every namespace and its rows are split by namespace inode, so
// each report holds its own namespace's drops. opts.Netns and opts.During
// are not used; opts.Observe is not called.
//
// It fails only when the tracer is required (Trace "on") and cannot
// start; a namespace that cannot be read is its Each's Err.
func RunEach(ctx context.Context, targets []counters.Target, opts Options) ([]Each, error) {
	var tr tracing
	switch opts.Trace {
	case "off":
	case "", "auto", "on":
		if !opts.Once {
			var err error
			if tr, err = startTraceIn(ctx, opts, ""); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("diagnose: Options.Trace must be auto, on or off (got %q)", opts.Trace)
	}
	if tr.t != nil {
		defer tr.t.Close()
	}
	out := make([]Each, len(targets))
	inodes := make([]uint64, len(targets))
	first := make([]*counters.Snapshot, len(targets))
	before := make([]*sockets.Summary, len(targets))
	parallel(len(targets), func(i int) {
		t := targets[i]
		out[i].Netns = t
		ino, err := netns.ID(t.Spec())
		if err != nil {
			out[i].Err = err
			return
		}
		inodes[i] = ino
		if first[i], out[i].Err = counters.CollectIn(ctx, t, counters.Options{FS: opts.FS}); out[i].Err != nil {
			return
		}
		if !opts.Once && !opts.NoSockets {
			before[i], _ = sockets.Summarize(ctx, sockets.Options{Netns: t, Top: -1})
		}
	})
	if opts.Once {
		parallel(len(targets), func(i int) {
			if out[i].Err != nil {
				return
			}
			o := opts
			o.Netns = targets[i]
			r := AnalyzeWith(&counters.Snapshot{}, first[i], 0, extra(ctx, o, first[i]))
			r.Once = true
			MarkExpected(r, opts.Expect)
			r.stamp(first[i].Time)
			out[i].Report = r
		})
		return out, nil
	}
	if opts.Progress != nil {
		opts.Progress(fmt.Sprintf("sampling %d namespaces for %s…", len(targets), opts.Interval))
	}
	t := time.NewTimer(opts.Interval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	second := make([]*counters.Snapshot, len(targets))
	parallel(len(targets), func(i int) {
		if out[i].Err != nil {
			return
		}
		second[i], out[i].Err = counters.CollectIn(ctx, targets[i], counters.Options{FS: opts.FS})
	})
	var trace *droptrace.Snapshot
	if tr.t != nil {
		if end, err := tr.t.Snapshot(); err != nil {
			tr.err = err
		} else {
			d := droptrace.Delta(tr.start, end)
			trace = &d
		}
	}
	parallel(len(targets), func(i int) {
		if out[i].Err != nil {
			return
		}
		a, b := first[i], second[i]
		o := opts
		o.Netns = targets[i]
		x := extra(ctx, o, b)
		if x.Sockets != nil {
			x.SocketsBefore = before[i]
		}
		if trace != nil {
			own := traceOf(*trace, inodes[i])
			x.Trace = &own
		}
		if tr.err != nil {
			b.Fail(SourceTracer, tr.err)
		}
		r := AnalyzeWith(a, b, b.Time.Sub(a.Time), x)
		MarkExpected(r, opts.Expect)
		r.stamp(a.Time)
		out[i].Report = r
	})
	return out, nil
}

// traceOf keeps the rows of one namespace. Drops the tracer could not put
// in a row (its map was full) belong to no namespace and are left out.
func traceOf(s droptrace.Snapshot, inode uint64) droptrace.Snapshot {
	keep := func(rows []droptrace.Row) []droptrace.Row {
		var out []droptrace.Row
		for _, r := range rows {
			// The tracer keys rows by the low 32 bits of the inode
			// (bpf/droptrace.c: ns.inum is an unsigned int).
			if uint64(r.Netns) == inode {
				out = append(out, r)
			}
		}
		return out
	}
	s.Rows, s.Noise = keep(s.Rows), keep(s.Noise)
	s.Unattributed, s.LostEvents, s.FlowOverflow, s.StackErrors = 0, 0, 0, 0
	return s
}

// parallel runs fn(0..n-1) on a few goroutines: collecting a namespace is
// mostly waiting on the kernel, so a few at once shorten the walk without
// letting 200 namespaces' readers fight for two cores.
func parallel(n int, fn func(i int)) {
	workers := min(n, max(2, runtime.NumCPU()))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
