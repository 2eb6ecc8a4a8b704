package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkStartup runs whole processes, as a user does: `netdrop --help`,
// `netdrop counters --json` (every counter of the path) and `nstat -az`
// (the kernel's SNMP and netstat counters alone), alternated in one run so
// that the load of a shared machine falls on all three alike, and prints
// the medians, the spread (p10–p90) and the ratio to nstat, in wall time and
// in CPU time (user + system of the child, which a busy machine disturbs
// less). The binary is built as `make` builds it.
//
//	go test ./cmd/netdrop -run '^$' -bench Startup -benchtime 40x
func BenchmarkStartup(b *testing.B) {
	nstat, err := exec.LookPath("nstat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal("nstat (iproute2) not installed")
		}
		b.Skip("needs nstat (iproute2) as the anchor")
	}
	bin := filepath.Join(b.TempDir(), "netdrop")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	if st, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(st.Size())/(1<<20), "binary-MiB")
	}
	cmds := []struct {
		name string
		argv []string
	}{
		{"help", []string{bin, "--help"}},
		{"counters", []string{bin, "counters", "--json"}},
		{"nstat", []string{nstat, "-az"}},
	}
	runOnce := func(argv []string) (wall, cpu time.Duration) {
		c := exec.Command(argv[0], argv[1:]...)
		t0 := time.Now()
		// counters exits 0; a user without root still gets the counters it
		// can read, so only a failure to run at all stops the benchmark.
		if err := c.Run(); err != nil && c.ProcessState == nil {
			b.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		return time.Since(t0), c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	for _, c := range cmds { // warm the page cache
		runOnce(c.argv)
	}
	wall := make([][]time.Duration, len(cmds))
	cpu := make([][]time.Duration, len(cmds))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, c := range cmds {
			w, u := runOnce(c.argv)
			wall[j] = append(wall[j], w)
			cpu[j] = append(cpu[j], u)
		}
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	med := make([][2]float64, len(cmds))
	var report strings.Builder
	for j, c := range cmds {
		w, u := quantiles(wall[j]), quantiles(cpu[j])
		med[j] = [2]float64{ms(w[1]), ms(u[1])}
		b.ReportMetric(med[j][0], c.name+"-wall-ms")
		b.ReportMetric(med[j][1], c.name+"-cpu-ms")
		fmt.Fprintf(&report, "%-9s wall %6.2f ms (p10–p90 %.2f–%.2f)  cpu %6.2f ms (%.2f–%.2f)\n",
			c.name, ms(w[1]), ms(w[0]), ms(w[2]), ms(u[1]), ms(u[0]), ms(u[2]))
	}
	const ns = 2
	b.ReportMetric(med[1][0]/med[ns][0], "counters/nstat-wall")
	b.ReportMetric(med[1][1]/med[ns][1], "counters/nstat-cpu")
	b.ReportMetric(med[0][0]/med[ns][0], "help/nstat-wall")
	fmt.Fprintf(&report, "counters --json / nstat -az: %.1f× wall, %.1f× cpu; --help / nstat: %.1f× wall (%d runs each, alternated)",
		med[1][0]/med[ns][0], med[1][1]/med[ns][1], med[0][0]/med[ns][0], b.N)
	b.Log("\n" + report.String())
}

// quantiles returns the 10th, 50th and 90th percentiles of d.
func quantiles(d []time.Duration) [3]time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return [3]time.Duration{at(0.1), at(0.5), at(0.9)}
}
