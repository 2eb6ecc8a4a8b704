package counters

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSNMPNamesInOneString: names the catalog does not know are built
// together in one string; each counter must still carry its own name and
// the catalog's (or the source's) meaning, as a lookup of that name alone
// gives.
func TestSNMPNamesInOneString(t *testing.T) {
	vs := []snmpValue{
		{"TcpExt", "FutureField", 1},
		{"Udp", "RcvbufErrors", 2},
		{"", "ifIndex", 3},
		{"Ip6", "InSomethingNew", 4},
		{"TcpExt", "ListenOverflows", 5},
	}
	for _, src := range []SourceID{ProcNetSNMP, ProcNetNetstat, ProcNetSNMP6} {
		var want []Counter
		for _, v := range vs {
			name, fi := lookupFieldBytes(src, []byte(v.Name()))
			want = append(want, Counter{Source: src, Field: name, Value: v.Value, Stage: fi.Stage, Gauge: fi.Gauge})
		}
		got := appendSNMPCounters([]Counter{{Field: "before"}}, src, vs)
		if d := cmp.Diff(append([]Counter{{Field: "before"}}, want...), got); d != "" {
			t.Errorf("%s (-want +got):\n%s", src, d)
		}
	}
}
