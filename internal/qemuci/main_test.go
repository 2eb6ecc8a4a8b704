package main

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRealConsole reads an excerpt of a real console of the 6.1 guest (the
// first boot, before the modules loaded on demand): a failed test, a skip
// with its reason and four failed lab scenarios.
func TestRealConsole(t *testing.T) {
	f, err := os.Open("testdata/console-6.1-failed.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if run.Kernel != "6.1.0-57-cloud-amd64" {
		t.Errorf("kernel %q", run.Kernel)
	}
	want := []string{
		"counters: TestIptablesNftRejectAndPolicyMatchIptables failed",
		"lab: scenario netfilter-drop failed",
		"lab: scenario qdisc-drop failed",
		"lab: scenario udp-no-socket failed",
		"lab: scenario udp-rcvbuf failed",
		"step counters exited 1",
		"step diagnose never ran",
		"step lab exited 1",
	}
	if diff := cmp.Diff(want, run.judge([]string{"counters", "lab", "diagnose"})); diff != "" {
		t.Errorf("judge (-want +got):\n%s", diff)
	}
	c := run.Steps[0]
	if got := [3]int{c.Count("PASS"), c.Count("SKIP"), c.Count("FAIL")}; got != [3]int{5, 1, 1} {
		t.Errorf("counters pass/skip/fail = %v", got)
	}
	skip := c.Tests[len(c.Tests)-1]
	if diff := cmp.Diff(&Test{Name: "TestNICLayoutMatchesEthtool", Result: "SKIP",
		Output: []string{"netlink_kernel_test.go:663: this host has no NIC with an ethtool ring to compare"}}, skip); diff != "" {
		t.Errorf("skip (-want +got):\n%s", diff)
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name    string
		console string
		want    []string
	}{
		{"all passed, subtest skipped with a reason", `ND-KERNEL 6.1.0 cpus=2
ND-STEP-BEGIN a
=== RUN   TestA
=== RUN   TestA/x
    a_test.go:9: kernel has no drop reasons
=== RUN   TestA/y
--- PASS: TestA (0.01s)
    --- SKIP: TestA/x (0.00s)
    --- PASS: TestA/y (0.00s)
PASS
ND-STEP-END a rc=0 seconds=1
ND-ALL-DONE
`, nil},
		{"skip without a reason", `ND-STEP-BEGIN a
=== RUN   TestA
--- SKIP: TestA (0.00s)
ND-STEP-END a rc=0 seconds=1
ND-ALL-DONE
`, []string{"a: TestA skipped without a reason"}},
		{"a kernel message is no reason", `ND-STEP-BEGIN a
=== RUN   TestA
[   12.345678] veth: module verification failed
--- SKIP: TestA (0.00s)
ND-STEP-END a rc=0 seconds=1
ND-ALL-DONE
`, []string{"a: TestA skipped without a reason"}},
		{"output after NAME belongs to that test", `ND-STEP-BEGIN a
=== RUN   TestA
=== PAUSE TestA
=== RUN   TestB
=== NAME  TestA
    a_test.go:3: no BTF
--- SKIP: TestA (0.00s)
=== NAME  TestB
--- PASS: TestB (0.00s)
ND-STEP-END a rc=0 seconds=1
ND-ALL-DONE
`, nil},
		{"coloured lab verdicts", "ND-STEP-BEGIN a\n\x1b[32mPASS\x1b[0m udp-rcvbuf: expected socket-rcvbuf, found socket-rcvbuf (2994 drops, 0.3s)\n" +
			"\x1b[31mFAIL\x1b[0m qdisc-drop: expected qdisc, found no finding (0 drops, 0.2s)\nND-STEP-END a rc=1 seconds=1\nND-ALL-DONE\n",
			[]string{"a: scenario qdisc-drop failed", "step a exited 1"}},
		{"a step that printed no result", "ND-STEP-BEGIN a\nsh: not found\nND-STEP-END a rc=0 seconds=0\nND-ALL-DONE\n",
			[]string{"step a reported no test or scenario"}},
		{"guest died in a step", `ND-STEP-BEGIN a
=== RUN   TestA
[   99.000000] Kernel panic - not syncing
`, []string{"step a did not end", "the guest did not reach the end of its steps (crash, panic or timeout)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, err := parse(strings.NewReader(tt.console))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, run.judge([]string{"a"})); diff != "" {
				t.Errorf("judge (-want +got):\n%s", diff)
			}
		})
	}
}
