package recording

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// fixture is a snapshot of the counters of a real 6.18 kernel
// (counters/testdata), the first interval of the synthetic recordings.
func fixture(t *testing.T) *counters.Snapshot {
	t.Helper()
	s := counters.Collect(context.Background(), counters.Options{FS: counters.NewFS("../../counters/testdata/linux-6.18"), Netns: counters.CurrentNetns().String()})
	if len(s.Counters) < 100 {
		t.Fatalf("fixture snapshot has %d counters", len(s.Counters))
	}
	s.Time = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	return s
}

// series makes n intervals a second apart from the fixture: a drop
// counter grows, a new interface appears (new keys, another order), the
// socket view comes and goes, a sysctl changes, the tracer counts.
func series(t *testing.T, n int) []Interval {
	t.Helper()
	base := fixture(t)
	var out []Interval
	for i := range n {
		s := &counters.Snapshot{Time: base.Time.Add(time.Duration(i) * time.Second), Netns: base.Netns, CPUs: base.CPUs,
			Unavailable: base.Unavailable, NICs: base.NICs, Hooks: base.Hooks, Sysctls: map[string]string{}}
		for k, v := range base.Sysctls {
			s.Sysctls[k] = v
		}
		s.Sysctls["net.core.rmem_max"] = "212992"
		if i >= 3 {
			s.Sysctls["net.core.rmem_max"] = "4194304"
		}
		for _, c := range base.Counters {
			if c.Field == "Udp:RcvbufErrors" {
				c.Value += uint64(i * 100)
			}
			s.Add(c)
			if i == 2 && c.Field == "Udp:InDatagrams" {
				// A new counter in the middle: the order changes.
				s.Add(counters.Counter{Source: counters.NetlinkLinkStats, Object: "veth9", Field: "rx_dropped", Stage: stage.RxRing, Value: 7})
			}
		}
		s.Add(counters.Counter{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Stage: stage.Softirq, HostWide: true, Bits: 32, Value: uint64(1<<32 - 10 + i*5)})
		iv := Interval{Time: s.Time, Counters: s}
		switch {
		case i%4 == 3:
			// Not read this time: the last view, with its time.
			iv.Sockets, iv.SocketsAt = out[i-1].Sockets, out[i-1].SocketsAt
		case i%4 != 1:
			iv.SocketsAt = s.Time
			iv.Sockets = &sockets.Summary{Netns: counters.CurrentNetns().String(), Total: 3 + i, Unavailable: []string{},
				Pressure: []sockets.PressuredSocket{{Family: "ipv4", Protocol: "udp", Local: netip.MustParseAddrPort("10.0.0.2:5001"), Drops: uint32(i * 3), Rcvbuf: 2304, Processes: []sockets.Process{{PID: 42, Comm: "sink"}}}}}
		}
		if i > 0 {
			iv.Trace = &droptrace.Snapshot{Time: s.Time, Rows: []droptrace.Row{
				{Count: uint64(10 * i), Reason: "SOCKET_RCVBUFF", ReasonCode: 6, Location: "__udp_queue_rcv_skb+0x1a", Function: "__udp_queue_rcv_skb", Stage: stage.SocketRcvbuf, Netns: 4026531840, Protocol: "ipv4", L4: "udp"},
			}}
		}
		out = append(out, iv)
	}
	return out
}

func write(t *testing.T, path string, ivs []Interval, opts Options) *Writer {
	t.Helper()
	w, err := Create(path, Header{Host: "h", Kernel: "6.18.0", Interval: Duration(time.Second), Started: ivs[0].Time}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, iv := range ivs {
		if err := w.Write(iv); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

func readAll(t *testing.T, r *Reader) []Interval {
	t.Helper()
	var out []Interval
	for {
		iv, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *iv)
	}
}

var cmpIntervals = cmp.Options{
	cmpopts.IgnoreUnexported(counters.Snapshot{}, droptrace.Row{}),
	cmpopts.EquateEmpty(),
	cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{}),
}

func TestRoundTrip(t *testing.T) {
	want := series(t, 8)
	path := filepath.Join(t.TempDir(), "r.ndrec")
	write(t, path, want, Options{})
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Header.Format != Format || r.Header.Version != Version || r.Header.Host != "h" || time.Duration(r.Header.Interval) != time.Second {
		t.Errorf("header %+v", r.Header)
	}
	got := readAll(t, r)
	if diff := cmp.Diff(want, got, cmpIntervals); diff != "" {
		t.Errorf("intervals read back (-want +got):\n%s", diff)
	}
	if r.Truncated() != nil {
		t.Errorf("clean file reported truncated: %v", r.Truncated())
	}
}

// TestTruncatedAnywhere cuts a recording anywhere: the reader never
// fails, and gives back exactly the intervals whose frame is whole.
func TestTruncatedAnywhere(t *testing.T) {
	ivs := series(t, 4)
	for _, iv := range ivs {
		// A few counters keep the frames small and the test fast.
		iv.Counters.Counters = iv.Counters.Counters[len(iv.Counters.Counters)-40:]
		iv.Counters.Sysctls, iv.Counters.NICs = nil, nil
	}
	path := filepath.Join(t.TempDir(), "r.ndrec")
	write(t, path, ivs, Options{})
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Where each frame ends: the length of the file after it.
	var ends []int
	{
		w, err := Create(filepath.Join(t.TempDir(), "ends.ndrec"), Header{Host: "h", Kernel: "6.18.0", Interval: Duration(time.Second), Started: ivs[0].Time}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int(w.Size()))
		for _, iv := range ivs {
			if err := w.Write(iv); err != nil {
				t.Fatal(err)
			}
			ends = append(ends, int(w.Size()))
		}
		w.Close()
	}
	if ends[len(ends)-1] != len(full) {
		t.Fatalf("frame ends %v, file %d bytes", ends, len(full))
	}
	// Every byte near a frame boundary, one in 7 elsewhere: a decoder
	// per cut costs.
	near := func(cut int) bool {
		for _, e := range ends {
			if cut >= e-16 && cut <= e+16 {
				return true
			}
		}
		return false
	}
	for cut := 0; cut <= len(full); cut++ {
		if !near(cut) && cut%7 != 0 {
			continue
		}
		r, err := NewReader(bytes.NewReader(full[:cut]))
		if cut < ends[0] {
			if err == nil {
				t.Fatalf("cut at %d (inside the header): no error", cut)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		got := readAll(t, r)
		whole := 0
		for _, e := range ends[1:] {
			if e <= cut {
				whole++
			}
		}
		if len(got) != whole {
			t.Fatalf("cut at %d: read %d intervals, %d are whole", cut, len(got), whole)
		}
		if diff := cmp.Diff(ivs[:whole], got, cmpIntervals); diff != "" {
			t.Fatalf("cut at %d (-want +got):\n%s", cut, diff)
		}
		if partial := !contains(ends, cut); partial != (r.Truncated() != nil) {
			t.Fatalf("cut at %d: partial %v, Truncated %v", cut, partial, r.Truncated())
		}
		r.Close()
	}
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func TestNotARecording(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":    nil,
		"text":     []byte("hello\n"),
		"zstd-txt": mustZstd(t, []byte(`{"t":"interval"}`+"\n")),
		"version":  mustZstd(t, []byte(`{"t":"header","header":{"format":"netdrop-recording","version":99}}`+"\n")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(data))
			if !errors.Is(err, ErrFormat) {
				t.Errorf("err = %v, want ErrFormat", err)
			}
		})
	}
}

func mustZstd(t *testing.T, b []byte) []byte {
	t.Helper()
	w, err := Create(filepath.Join(t.TempDir(), "x"), Header{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.enc.EncodeAll(b, nil)
}

// TestRotation bounds the recording: the current file and FILE.1 stay
// near MaxSize together, and each reads alone from a full snapshot.
func TestRotation(t *testing.T) {
	ivs := series(t, 40)
	dir := t.TempDir()
	path := filepath.Join(dir, "r.ndrec")
	first := filepath.Join(dir, "first.ndrec")
	one := write(t, first, ivs[:1], Options{})
	max := 3 * one.Size() // a keyframe and some intervals per file
	w := write(t, path, ivs, Options{MaxSize: max})
	if w.Rotations() == 0 {
		t.Fatalf("no rotation with MaxSize %d", max)
	}
	var total int64
	var got []Interval
	for _, p := range []string{path + ".1", path} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, readAll(t, r)...)
		r.Close()
	}
	if total > max+one.Size() {
		t.Errorf("%d bytes on disk, MaxSize %d", total, max)
	}
	// The files hold the last intervals, in order, each read whole.
	tail := ivs[len(ivs)-len(got):]
	if diff := cmp.Diff(tail, got, cmpIntervals); diff != "" {
		t.Errorf("intervals of the two files (-want +got):\n%s", diff)
	}
}

func TestReadSpan(t *testing.T) {
	ivs := series(t, 8)
	path := filepath.Join(t.TempDir(), "r.ndrec")
	write(t, path, ivs, Options{})
	tests := []struct {
		name         string
		since, until time.Time
		first, last  int
		traceDrops   uint64 // 0: no trace
	}{
		{"all", time.Time{}, time.Time{}, 0, 7, 10 * (1 + 2 + 3 + 4 + 5 + 6 + 7)},
		{"since", ivs[2].Time, time.Time{}, 2, 7, 10 * (3 + 4 + 5 + 6 + 7)},
		{"window", ivs[2].Time.Add(-time.Millisecond), ivs[5].Time.Add(time.Millisecond), 2, 5, 10 * (3 + 4 + 5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			sp, err := ReadSpan(r, tc.since, tc.until, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !sp.First.Time.Equal(ivs[tc.first].Time) || !sp.Last.Time.Equal(ivs[tc.last].Time) {
				t.Errorf("span %s..%s, want %s..%s", sp.First.Time, sp.Last.Time, ivs[tc.first].Time, ivs[tc.last].Time)
			}
			if sp.Intervals != tc.last-tc.first+1 {
				t.Errorf("%d intervals, want %d", sp.Intervals, tc.last-tc.first+1)
			}
			if sp.Trace == nil || sp.Trace.Drops() != tc.traceDrops || len(sp.Trace.Rows) != 1 {
				t.Errorf("merged trace %+v, want one row of %d drops", sp.Trace, tc.traceDrops)
			}
		})
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := ReadSpan(r, ivs[7].Time, time.Time{}, nil); !errors.Is(err, ErrEmptySpan) {
		t.Errorf("one interval: err %v, want ErrEmptySpan", err)
	}
}

func TestMergeTrace(t *testing.T) {
	row := func(n uint64, reason string) droptrace.Row {
		return droptrace.Row{Count: n, Reason: reason, Location: "f+0x1", Function: "f", Netns: 1}
	}
	got := MergeTrace([]droptrace.Snapshot{
		{Rows: []droptrace.Row{row(3, "A"), row(1, "B")}, Unattributed: 1},
		{Rows: []droptrace.Row{row(4, "B")}, Noise: []droptrace.Row{row(2, "NOT_SPECIFIED")}, LostEvents: 2},
	})
	want := droptrace.Snapshot{
		Rows:         []droptrace.Row{row(5, "B"), row(3, "A")},
		Noise:        []droptrace.Row{row(2, "NOT_SPECIFIED")},
		Unattributed: 1, LostEvents: 2,
	}
	if diff := cmp.Diff(want, got, cmpIntervals); diff != "" {
		t.Errorf("MergeTrace (-want +got):\n%s", diff)
	}
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, err := Create(filepath.Join(f.TempDir(), "seed"), Header{Host: "h"}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w.enc.EncodeAll([]byte(`{"t":"header","header":{"format":"netdrop-recording","version":1}}`+"\n"+`{"t":"interval","keys":[{"s":"x","f":"y"}],"order":[[0,1]],"set":[[0,5]]}`+"\n"), nil))
	f.Add(buf.Bytes())
	w.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		defer r.Close()
		for range 1000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

// TestSocketPacer keeps the socket view within its budget: a cheap view
// is read every interval, a dump of many sockets less often.
func TestSocketPacer(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	view := &sockets.Summary{}
	for _, tc := range []struct {
		cost     time.Duration
		at       time.Duration // since the read
		wantRead bool
	}{
		{2 * time.Millisecond, time.Second, true},
		{10 * time.Millisecond, time.Second, true},
		{100 * time.Millisecond, time.Second, false},
		{100 * time.Millisecond, 9 * time.Second, false},
		{100 * time.Millisecond, 10 * time.Second, true},
	} {
		p := &socketPacer{}
		if !p.due(t0) {
			t.Fatal("no view yet: a read is due")
		}
		p.read(t0, tc.cost, view)
		if got := p.due(t0.Add(tc.at)); got != tc.wantRead {
			t.Errorf("view cost %s, %s later: due %v, want %v", tc.cost, tc.at, got, tc.wantRead)
		}
		p.read(t0, tc.cost, nil)
		if !p.due(t0.Add(time.Millisecond)) {
			t.Errorf("a failed read (cost %s) is not retried", tc.cost)
		}
	}
}

// TestOpenAll: a rotated recording reads whole and in time order through
// OpenAll (FILE.1, then FILE), spans cross the rotation, and a FILE.1
// that is not the part before FILE is left alone — one left by an earlier
// recording to the same name, or a FILE replaced while it was read.
func TestOpenAll(t *testing.T) {
	ivs := series(t, 40)
	dir := t.TempDir()
	one := write(t, filepath.Join(dir, "one.ndrec"), ivs[:1], Options{})
	path := filepath.Join(dir, "r.ndrec")
	w := write(t, path, ivs, Options{MaxSize: 3 * one.Size()})
	if w.Rotations() < 2 {
		t.Fatalf("%d rotations, want at least 2 (so the parts are not 0 and 1)", w.Rotations())
	}
	var want []Interval
	for _, p := range []string{path + ".1", path} {
		r, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, readAll(t, r)...)
		r.Close()
	}
	r, err := OpenAll(path)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if diff := cmp.Diff(want, got, cmpIntervals); diff != "" {
		t.Errorf("OpenAll (-both files +got):\n%s", diff)
	}
	if diff := cmp.Diff(ivs[len(ivs)-len(got):], got, cmpIntervals); diff != "" {
		t.Errorf("OpenAll against the intervals written (-want +got):\n%s", diff)
	}
	if r.Header.Part != w.Rotations()-1 || r.Truncated() != nil {
		t.Errorf("header part %d (want the older file's, %d), truncated %v", r.Header.Part, w.Rotations()-1, r.Truncated())
	}
	r.Close()

	// A span across the rotation: the tracer's deltas of both files add
	// up, and the counters' delta runs from FILE.1's first interval.
	r, err = OpenAll(path)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ReadSpan(r, time.Time{}, time.Time{}, nil)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	first, last := len(ivs)-len(got), len(ivs)-1
	var drops uint64
	for i := first + 1; i <= last; i++ {
		drops += uint64(10 * i)
	}
	if !sp.First.Time.Equal(ivs[first].Time) || !sp.Last.Time.Equal(ivs[last].Time) || sp.Trace == nil || sp.Trace.Drops() != drops {
		t.Errorf("span %s..%s with %v, want %s..%s with %d traced drops", sp.First.Time, sp.Last.Time, sp.Trace, ivs[first].Time, ivs[last].Time, drops)
	}

	// FILE.1 there but unopenable (a symbolic link to itself, since root
	// opens any file whatever its mode): an error naming it, not half the
	// recording without a word.
	if err := os.Rename(path+".1", path+".1.away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(path)+".1", path+".1"); err != nil {
		t.Fatal(err)
	}
	if r, err := OpenAll(path); err == nil {
		r.Close()
		t.Errorf("OpenAll with an unreadable %s.1: no error", filepath.Base(path))
	} else if !strings.Contains(err.Error(), ".1") {
		t.Errorf("OpenAll with an unreadable FILE.1: %v, want it named", err)
	}
	if err := os.Remove(path + ".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".1.away", path+".1"); err != nil {
		t.Fatal(err)
	}

	// A new recording to the same name, shorter than a rotation: the
	// FILE.1 of the previous one stays on disk and is not read.
	later := series(t, 3)
	for i := range later {
		later[i].Time = later[i].Time.Add(time.Hour)
		later[i].Counters.Time = later[i].Time
	}
	write(t, path, later, Options{MaxSize: 3 * one.Size()})
	r, err = OpenAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r); len(got) != 3 || !got[0].Time.Equal(later[0].Time) {
		t.Errorf("after a new recording: %d intervals from %v, want its 3", len(got), got[0].Time)
	}
	r.Close()

	// FILE replaced between opening FILE.1 and reading on: an error, not
	// another recording's intervals appended.
	write(t, path, ivs, Options{MaxSize: 3 * one.Size()})
	r, err = OpenAll(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write(t, path, later, Options{})
	for err == nil {
		_, err = r.Next()
	}
	if !errors.Is(err, ErrFormat) {
		t.Errorf("FILE replaced while read: %v, want ErrFormat", err)
	}
}
