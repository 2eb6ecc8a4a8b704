package diagnose

import (
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netdrop/netdrop/droptrace"
)

// One host-wide trace, split by namespace: each keeps its own rows, and
// drops no row holds are nobody's.
func TestTraceOf(t *testing.T) {
	s := droptrace.Snapshot{
		Rows: []droptrace.Row{
			{Count: 7, Reason: "NO_SOCKET", Netns: 4026532173},
			{Count: 3, Reason: "NETFILTER_DROP", Netns: 4026531833},
		},
		Noise:        []droptrace.Row{{Count: 9, Reason: "NOT_SPECIFIED", Netns: 4026532173}},
		Unattributed: 5,
	}
	got := traceOf(s, 4026532173)
	want := droptrace.Snapshot{
		Rows:  []droptrace.Row{{Count: 7, Reason: "NO_SOCKET", Netns: 4026532173}},
		Noise: []droptrace.Row{{Count: 9, Reason: "NOT_SPECIFIED", Netns: 4026532173}},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(droptrace.Row{})); diff != "" {
		t.Errorf("traceOf (-want +got):\n%s", diff)
	}
	if got := traceOf(s, 1); len(got.Rows)+len(got.Noise) != 0 {
		t.Errorf("a namespace without drops got %+v", got)
	}
}

func TestParallelRunsEach(t *testing.T) {
	var seen [50]atomic.Int32
	parallel(len(seen), func(i int) { seen[i].Add(1) })
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Errorf("index %d ran %d times", i, n)
		}
	}
}
