package lab

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/recording"
)

// checkRecorded diagnoses the recording a scenario left (Options.RecordDir)
// as `netdrop diagnose --from` does, offline, and compares it with the live
// diagnosis of the same interval: the same findings, evidence, counts and
// fixes. Rates may differ in the last digits: the live interval is
// measured on the monotonic clock, the recorded one between wall-clock
// times.
func checkRecorded(t *testing.T, r Result) {
	t.Helper()
	if r.Report == nil {
		return
	}
	if r.Record == "" {
		t.Errorf("%s: no recording kept", r.Scenario)
		return
	}
	rd, err := recording.Open(r.Record)
	if err != nil {
		t.Errorf("%s: %v", r.Scenario, err)
		return
	}
	defer rd.Close()
	sp, err := recording.ReadSpan(rd, time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Errorf("%s: %v", r.Scenario, err)
		return
	}
	if sp.Intervals != 2 {
		t.Errorf("%s: %d intervals recorded, want the diagnosis's 2", r.Scenario, sp.Intervals)
	}
	o := diagnose.Observed{Before: sp.First.Counters, After: sp.Last.Counters, SocketsBefore: sp.First.Sockets, SocketsAfter: sp.Last.Sockets, Trace: sp.Trace}
	expects, err := diagnose.ParseExpects(mustScenario(t, r.Scenario).Expect)
	if err != nil {
		t.Fatal(err)
	}
	got := o.Analyze(expects)
	got.Host, got.Kernel = rd.Header.Host, rd.Header.Kernel
	approx := cmp.Comparer(func(a, b float64) bool {
		return a == b || math.Abs(a-b) <= 1e-3*math.Max(math.Abs(a), math.Abs(b))
	})
	if diff := cmp.Diff(r.Report, got, approx, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s: diagnosis of the recording differs from the live one (-live +recorded):\n%s", r.Scenario, diff)
	}
	if len(r.Report.Findings) == 0 {
		t.Errorf("%s: the live diagnosis found nothing to compare", r.Scenario)
	}
}

func mustScenario(t *testing.T, name string) Scenario {
	t.Helper()
	l, err := Select([]string{name})
	if err != nil || len(l) != 1 {
		t.Fatalf("scenario %s: %v", name, err)
	}
	return l[0]
}
