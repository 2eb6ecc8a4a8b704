package recording

import (
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
)

// Point is the loss of one stretch of a timeline: each stage's drops and
// rate as a diagnosis of that stretch attributes them.
type Point struct {
	Start, End time.Time
	Stages     []diagnose.StageDrops
	// Worst is the highest severity of the stretch's findings; Findings
	// counts them.
	Worst    diagnose.Severity
	Findings int
}

// Timeline diagnoses the recording at path (with its rotated part, as
// OpenAll reads it) from since to until (zero: open ends) in at most points consecutive stretches of whole intervals,
// so a day at one reading a second still draws in a few hundred points.
// Every stretch is analysed as `diagnose --from` would analyse it, so a
// stage's rate in a chart is the rate its findings give.
func Timeline(path string, since, until time.Time, points int, expect []diagnose.Expect) ([]Point, error) {
	n, err := count(path, since, until)
	if err != nil {
		return nil, err
	}
	if n < 2 {
		return nil, ErrEmptySpan
	}
	step := max(1, (n-1+points-1)/max(1, points)) // intervals per point, rounded up
	r, err := OpenAll(path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var (
		out    []Point
		prev   *Interval
		parts  []droptrace.Snapshot
		traced = true
		i      = -1
	)
	err = inSpan(r, since, until, func(iv *Interval) {
		i++
		if prev == nil {
			prev = iv
			return
		}
		if iv.Trace == nil {
			traced = false
		} else {
			parts = append(parts, *iv.Trace)
		}
		if i%step != 0 && i != n-1 {
			return
		}
		o := diagnose.Observed{Before: prev.Counters, After: iv.Counters, SocketsBefore: prev.Sockets, SocketsAfter: iv.Sockets}
		if traced {
			t := MergeTrace(parts)
			o.Trace = &t
		}
		rep := o.Analyze(expect)
		p := Point{Start: prev.Time, End: iv.Time, Stages: rep.Stages, Findings: len(rep.Findings)}
		p.Worst, _ = rep.Worst()
		out = append(out, p)
		prev, parts, traced = iv, nil, true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// count is the number of intervals from since to until: Timeline reads
// the file twice (count, then the stretches) so that it never holds more
// than one stretch of intervals in memory.
func count(path string, since, until time.Time) (int, error) {
	r, err := OpenAll(path)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	n := 0
	err = inSpan(r, since, until, func(*Interval) { n++ })
	return n, err
}
