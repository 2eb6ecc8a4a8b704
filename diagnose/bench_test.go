package diagnose_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
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

// BenchmarkSnapshotVsTools measures one full netdrop snapshot against
// running the equivalent tools by hand, alternating the two in one run so
// machine noise hits both alike. The x_faster metric is the ratio.
//
//	go test -run ^$ -bench SnapshotVsTools -benchtime 20x ./diagnose/
func BenchmarkSnapshotVsTools(b *testing.B) {
	ctx := context.Background()
	cmds := handTools()
	var missing []string
	for _, c := range cmds {
		if _, err := exec.LookPath(c[0]); err != nil {
			missing = append(missing, c[0])
		}
	}
	if len(missing) > 0 {
		b.Logf("not installed, costing nothing on the tools' side: %v", missing)
	}
	var snapT, toolT time.Duration
	var counted int
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		s, err := diagnose.Snapshot(ctx, "", counters.FS{})
		if err != nil {
			b.Fatal(err)
		}
		snapT += time.Since(t0)
		counted = len(s.Counters)
		t1 := time.Now()
		for _, c := range cmds {
			_ = exec.Command(c[0], c[1:]...).Run() // exit codes do not matter, the time does
		}
		toolT += time.Since(t1)
	}
	b.ReportMetric(float64(snapT.Microseconds())/float64(b.N), "snapshot_us")
	b.ReportMetric(float64(toolT.Microseconds())/float64(b.N), "tools_us")
	b.ReportMetric(float64(toolT)/float64(snapT), "x_faster")
	b.ReportMetric(float64(counted), "counters")
}
