package recording

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkRecord records this host at one reading a second, as
// `netdrop record` does, for b.N intervals (run it with -benchtime=60x for
// a minute), and reports what the issue sets targets for:
//
//	MB/min     the file's growth per minute after its first full snapshot
//	           (target: under 1 MB)
//	%core      CPU time (user and system) over wall time: the share of one
//	           core the recording costs (target: under 1%)
//	B/interval bytes written per interval, after the first
//
//	go test -run '^$' -bench Record -benchtime 60x ./internal/recording/
func BenchmarkRecord(b *testing.B) {
	for _, tc := range []struct {
		name           string
		sockets, trace bool
	}{
		{"counters", false, false},
		{"sockets", true, false},
		{"sockets+trace", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.trace && os.Geteuid() != 0 {
				b.Skip("the drop tracer needs root")
			}
			// Duration is inclusive of its end: N readings span N-1
			// intervals, plus a margin below one interval (0 would mean
			// unbounded).
			o := CollectOptions{Interval: time.Second, Duration: time.Duration(b.N-1)*time.Second + time.Second/2, Sockets: tc.sockets, Trace: tc.trace}
			path := filepath.Join(b.TempDir(), "bench.ndrec")
			w, err := Create(path, NewHeader(o, "bench"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			var first int64
			n := 0
			o.Progress = func(p Progress) {
				n = p.Intervals
				if n == 1 {
					first = p.Bytes
				}
			}
			var before, after unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &before)
			start := time.Now()
			b.ResetTimer()
			if err := Collect(context.Background(), w, o); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			wall := time.Since(start)
			unix.Getrusage(unix.RUSAGE_SELF, &after)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
			if n > 1 {
				per := float64(w.Size()-first) / float64(n-1)
				b.ReportMetric(per, "B/interval")
				b.ReportMetric(per*60/1e6, "MB/min")
			}
			b.ReportMetric(0, "ns/op") // wall time per op is the interval, not a cost
		})
	}
}
