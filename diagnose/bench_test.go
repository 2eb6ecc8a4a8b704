package diagnose_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/counters"
)

// handTools is what a user runs to see the same counters by hand: the
// commands listed in the diagnose issue, each once (ethtool -S once per
// interface). Tools that are not installed are left out of both sides'
// comparison only in the sense that they cost nothing; the report says which
// were missing.
func handTools() [][]string {
	cmds := [][]string{
		{"nstat", "-saz"},
		{"ip", "-s", "link"},
		{"ss", "-s"},
		{"tc", "-s", "qdisc"},
		{"iptables", "-nvxL"},
		{"conntrack", "-S"},
		{"cat", "/proc/net/softnet_stat"},
	}
	ifs, _ := os.ReadDir("/sys/class/net")
	for _, i := range ifs {
		cmds = append(cmds, []string{"ethtool", "-S", i.Name()})
	}
	return cmds
}

// sameInfoTools adds to handTools what a user must also run to see
// everything one snapshot holds: the NIC layout (ethtool -g -l -c), the
// per-CPU files, the per-socket and neighbour statistics, the settings the
// fixes quote, and the whole ruleset.
func sameInfoTools() [][]string {
	cmds := handTools()
	ifs, _ := os.ReadDir("/sys/class/net")
	for _, i := range ifs {
		if _, err := os.Stat("/sys/class/net/" + i.Name() + "/device"); err == nil {
			for _, f := range []string{"-g", "-l", "-c"} {
				cmds = append(cmds, []string{"ethtool", f, i.Name()})
			}
		}
	}
	cmds = append(cmds,
		[]string{"cat", "/proc/interrupts", "/proc/softirqs", "/proc/stat", "/proc/net/udp", "/proc/net/udp6",
			"/proc/net/sockstat", "/proc/net/sockstat6", "/proc/net/stat/arp_cache", "/proc/net/stat/ndisc_cache"},
		append([]string{"sysctl", "-e"}, counters.SysctlNames...),
		[]string{"nft", "list", "ruleset"},
	)
	return cmds
}

// runAll runs each command once; exit codes do not matter, the time does.
func runAll(cmds [][]string) time.Duration {
	t0 := time.Now()
	for _, c := range cmds {
		cmd := exec.Command(c[0], c[1:]...)
		_ = cmd.Run()
	}
	return time.Since(t0)
}

// BenchmarkSnapshotVsTools measures one full netdrop snapshot against
// running the equivalent tools by hand, alternating them in one run so
// machine noise hits all alike. x_faster compares with the tools the
// diagnose issue names (nstat, ip -s link, ss -s, tc -s qdisc,
// iptables -nvxL, conntrack -S, softnet_stat, ethtool -S); x_faster_same_info
// with everything a user must run to see what one snapshot holds.
// snapshot_cpu_us is the CPU time the process spent on a snapshot, all
// its threads together (the tools are other processes): on a shared
// machine it moves far less with other work than snapshot_us does, so it
// is the figure to compare two versions by.
//
//	go test -run '^$' -bench SnapshotVsTools -benchtime 20x ./diagnose/
func BenchmarkSnapshotVsTools(b *testing.B) {
	ctx := context.Background()
	tools, same := handTools(), sameInfoTools()
	var missing []string
	for _, c := range same {
		if _, err := exec.LookPath(c[0]); err != nil {
			missing = append(missing, c[0])
		}
	}
	if len(missing) > 0 {
		b.Logf("not installed, costing nothing on the tools' side: %v", missing)
	}
	var snapT, toolT, sameT, snapCPU time.Duration
	var counted int
	for i := 0; i < b.N; i++ {
		c0 := processCPU(b)
		t0 := time.Now()
		s, err := counters.CollectIn(ctx, counters.CurrentNetns(), counters.Options{})
		if err != nil {
			b.Fatal(err)
		}
		snapT += time.Since(t0)
		snapCPU += processCPU(b) - c0
		counted = len(s.Counters)
		toolT += runAll(tools)
		sameT += runAll(same)
	}
	b.ReportMetric(float64(snapT.Microseconds())/float64(b.N), "snapshot_us")
	b.ReportMetric(float64(snapCPU.Microseconds())/float64(b.N), "snapshot_cpu_us")
	b.ReportMetric(float64(toolT.Microseconds())/float64(b.N), "tools_us")
	b.ReportMetric(float64(sameT.Microseconds())/float64(b.N), "same_info_tools_us")
	b.ReportMetric(float64(toolT)/float64(snapT), "x_faster")
	b.ReportMetric(float64(sameT)/float64(snapT), "x_faster_same_info")
	b.ReportMetric(float64(counted), "counters")
}

// processCPU is the user and system time of every thread of this process
// so far (not of the tools it ran and waited for).
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
