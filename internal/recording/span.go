package recording

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// Span is the evidence of a stretch of a recording: its first and last
// intervals and what the tracer counted between them, which is what a
// live diagnosis of that stretch would have read.
type Span struct {
	First, Last *Interval
	// Trace sums the tracer's deltas of every interval after First up to
	// Last; nil unless the tracer ran for all of them.
	Trace *droptrace.Snapshot
	// Intervals counts the intervals read in the stretch, First included.
	Intervals int
}

// ErrEmptySpan says a stretch holds fewer than two intervals: there is no
// delta to diagnose.
var ErrEmptySpan = errors.New("fewer than two recorded intervals in the stretch asked for")

// ReadSpan reads r to the end and returns the stretch from the first
// interval at or after since to the last at or before until (zero times
// are open ends). each, if set, sees every interval of the stretch in
// order.
func ReadSpan(r *Reader, since, until time.Time, each func(*Interval)) (*Span, error) {
	sp := &Span{}
	traced := true
	var parts []droptrace.Snapshot
	err := inSpan(r, since, until, func(iv *Interval) {
		if each != nil {
			each(iv)
		}
		sp.Intervals++
		if sp.First == nil {
			sp.First = iv
			return
		}
		sp.Last = iv
		if iv.Trace == nil {
			traced = false
		} else {
			parts = append(parts, *iv.Trace)
		}
	})
	if err != nil {
		return nil, err
	}
	if sp.Last == nil {
		return sp, fmt.Errorf("%w (%d found)", ErrEmptySpan, sp.Intervals)
	}
	if traced {
		t := MergeTrace(parts)
		sp.Trace = &t
	}
	return sp, nil
}

// inSpan reads r to the end, or to the first interval after until, and
// calls fn with every interval from since to until (zero times are open
// ends), in order.
func inSpan(r *Reader, since, until time.Time, fn func(*Interval)) error {
	for {
		iv, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !since.IsZero() && iv.Time.Before(since) {
			continue
		}
		if !until.IsZero() && iv.Time.After(until) {
			return nil
		}
		fn(iv)
	}
}

// MergeTrace sums tracer deltas of consecutive intervals into one, as if
// the tracer had been read only at both ends: rows with the same reason,
// place and protocol add up. Stacks and flows, which a recording does not
// ask the tracer for, are kept from the rows' first appearance.
func MergeTrace(parts []droptrace.Snapshot) droptrace.Snapshot {
	var out droptrace.Snapshot
	type rk struct {
		reason, location, function, ifname, protocol, l4 string
		code, netns, ifindex                             uint32
		stage, alt                                       stage.ID
		class                                            droptrace.ReasonClass
	}
	merge := func(dst []droptrace.Row, idx map[rk]int, rows []droptrace.Row) []droptrace.Row {
		for _, r := range rows {
			k := rk{r.Reason, r.Location, r.Function, r.Ifname, r.Protocol, r.L4, r.ReasonCode, r.Netns, r.Ifindex, r.Stage, r.AltStage, r.Class}
			if i, ok := idx[k]; ok {
				dst[i].Count += r.Count
				continue
			}
			idx[k] = len(dst)
			dst = append(dst, r)
		}
		return dst
	}
	rows, noise := map[rk]int{}, map[rk]int{}
	for _, p := range parts {
		out.Time = p.Time
		out.Rows = merge(out.Rows, rows, p.Rows)
		out.Noise = merge(out.Noise, noise, p.Noise)
		out.LostEvents += p.LostEvents
		out.Unattributed += p.Unattributed
		out.FlowOverflow += p.FlowOverflow
		out.StackErrors += p.StackErrors
	}
	for _, rs := range [][]droptrace.Row{out.Rows, out.Noise} {
		sort.SliceStable(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			if a.Reason != b.Reason {
				return a.Reason < b.Reason
			}
			return a.Location < b.Location
		})
	}
	return out
}
