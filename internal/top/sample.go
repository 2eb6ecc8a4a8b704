// Package top is the model of `netdrop top`: a full-screen live view of the
// packet path that redraws every interval. It keeps the history of each
// stage's drop rate, the current findings, and what the tracer and the
// socket view add, and renders them for a terminal of any size.
//
// The model (Model: Update and View) is pure and tested on fixture samples
// without a terminal; the Sampler reads the kernel through the evidence
// packages and judges every interval with diagnose.AnalyzeWith, so top shows
// exactly the findings `netdrop diagnose` would give for that interval. Run
// puts the model on a terminal with bubbletea. This package does not decide
// exit codes or parse flags (internal/cli does).
package top

import (
	"context"
	"fmt"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
)

// Sample is one interval as top shows it.
type Sample struct {
	// Time is when the interval ended; Interval how long it really was
	// (the requested interval plus the time a reading takes).
	Time     time.Time
	Interval time.Duration
	// Report is diagnose's judgement of the interval: findings, stage
	// totals and severities, what could not be read.
	Report *diagnose.Report
	// Moved are the counters with a stage that moved in the interval,
	// by how much: what focusing a stage lists.
	Moved []counters.Counter
	// Trace is what the drop tracer counted in the interval; nil when
	// top runs without --trace.
	Trace *droptrace.Snapshot
	// Sockets are the sockets that dropped in the interval, most first;
	// nil when top runs without --sockets.
	Sockets []sockets.Dropped
}

// Options says what a Sampler reads.
type Options struct {
	// Netns is the namespace to watch; the zero value is the caller's own.
	Netns counters.Target
	// Trace runs the skb:kfree_skb tracer for drop reasons and kernel
	// functions; starting it must succeed.
	Trace bool
	// Sockets reads every socket through sock_diag each interval, with
	// the owning processes, to name the sockets that drop.
	Sockets bool
	// Expect declares drops the user intends, as diagnose --expect.
	Expect []diagnose.Expect
}

// reading is the kernel's state at one moment: the counters, and the
// tracer's and sock_diag's views when asked for. Samples are the
// differences between two readings.
type reading struct {
	counters *counters.Snapshot
	trace    *droptrace.Snapshot
	sockets  *sockets.Summary
}

// Sampler takes a reading each time Next is called and turns the difference
// from the previous one into a Sample. It is not safe for concurrent use;
// the model asks for one sample at a time.
type Sampler struct {
	read   func(ctx context.Context) (reading, error)
	close  func() error
	expect []diagnose.Expect
	prev   reading
}

// NewSampler starts the tracer when asked and takes the first reading, the
// baseline of the first sample.
func NewSampler(ctx context.Context, opts Options) (*Sampler, error) {
	var tr *droptrace.Tracer
	if opts.Trace {
		// Trace only the namespace being watched, as diagnose does: its
		// counters are the namespace's own.
		ns := opts.Netns.Path()
		if ns == "" {
			ns = "/proc/self/ns/net"
		}
		var err error
		if tr, err = droptrace.Start(ctx, droptrace.Options{Netns: ns}); err != nil {
			return nil, fmt.Errorf("start the drop tracer: %w", err)
		}
	}
	read := func(ctx context.Context) (reading, error) {
		snap, err := counters.CollectIn(ctx, opts.Netns, counters.Options{})
		if err != nil {
			return reading{}, err
		}
		r := reading{counters: snap}
		if tr != nil {
			t, err := tr.Snapshot()
			if err != nil {
				snap.Fail(diagnose.SourceTracer, err)
			} else {
				r.trace = &t
			}
		}
		if opts.Sockets {
			// Every socket (Top -1): a socket cut from one reading would
			// count all its drops since it opened in the next.
			sum, err := sockets.Summarize(ctx, sockets.Options{Netns: opts.Netns, Owners: true, Top: -1})
			if err != nil {
				snap.Fail(diagnose.SourceSockDiag, err)
			} else {
				r.sockets = sum
			}
		}
		return r, nil
	}
	s := &Sampler{read: read, expect: opts.Expect, close: func() error { return nil }}
	if tr != nil {
		s.close = tr.Close
	}
	first, err := read(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.prev = first
	return s, nil
}

// Close stops the tracer.
func (s *Sampler) Close() error { return s.close() }

// Next takes a reading and returns the interval since the previous one.
func (s *Sampler) Next(ctx context.Context) (*Sample, error) {
	cur, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	smp := sampleOf(s.prev, cur, s.expect)
	s.prev = cur
	return smp, nil
}

// sampleOf judges the interval between two readings with diagnose, the
// same rules and severities as `netdrop diagnose`.
func sampleOf(a, b reading, expect []diagnose.Expect) *Sample {
	dt := b.counters.Time.Sub(a.counters.Time)
	x := diagnose.Extra{Sockets: b.sockets, SocketsBefore: a.sockets}
	smp := &Sample{Time: b.counters.Time, Interval: dt}
	if a.trace != nil && b.trace != nil {
		d := droptrace.Delta(*a.trace, *b.trace)
		x.Trace = &d
		smp.Trace = &d
	}
	smp.Report = diagnose.AnalyzeWith(a.counters, b.counters, dt, x)
	diagnose.MarkExpected(smp.Report, expect)
	for _, c := range counters.Delta(a.counters, b.counters).Counters {
		if c.Stage != "" && !c.Gauge && c.Value > 0 {
			smp.Moved = append(smp.Moved, c)
		}
	}
	if b.sockets != nil {
		smp.Sockets = sockets.NewDrops(a.sockets, b.sockets)
		if smp.Sockets == nil {
			smp.Sockets = []sockets.Dropped{}
		}
	}
	return smp
}
