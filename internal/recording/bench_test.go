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
//	%core      CPU time (user and system) over wall time from the first
//	           interval on: the share of one core the recording costs
//	           (target: under 1%)
//	ms-cpu-start CPU time to start and take the first interval (the
//	           tracer parses the kernel's BTF and kallsyms once)
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
			var (
				first         int64
				n             int
				before, after unix.Rusage
				started       time.Time
				startup       time.Duration
			)
			// The steady state is measured from the first interval on:
			// starting the tracer (parsing the kernel's BTF and
			// kallsyms) is a one-off cost, reported apart.
			o.Progress = func(p Progress) {
				n = p.Intervals
				if n == 1 {
					first = p.Bytes
					unix.Getrusage(unix.RUSAGE_SELF, &before)
					started = time.Now()
					startup = time.Duration(before.Utime.Nano()+before.Stime.Nano()) - startup
				}
			}
			unix.Getrusage(unix.RUSAGE_SELF, &after)
			startup = time.Duration(after.Utime.Nano() + after.Stime.Nano())
			b.ResetTimer()
			if err := Collect(context.Background(), w, o); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			wall := time.Since(started)
			unix.Getrusage(unix.RUSAGE_SELF, &after)
			b.ReportMetric(startup.Seconds()*1000, "ms-cpu-start")
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
