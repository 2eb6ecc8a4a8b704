package diagnose

import (
	"testing"

	"github.com/netdrop/netdrop/counters"
)

// TestFieldMatches checks field's matcher against its definition: a MIB
// counter of one of the names, from the file that prints its group, with
// no object, for short lists (compared in turn) and long ones (looked up).
func TestFieldMatches(t *testing.T) {
	long := []string{"Udp:RcvbufErrors", "Udp:InErrors", "Udp6:RcvbufErrors", "Udp6:InErrors", "TcpExt:TCPOFODrop",
		"TcpExt:PruneCalled", "TcpExt:RcvPruned", "TcpExt:TCPRcvQDrop", "TcpExt:TCPZeroWindowDrop", "Ip:InDiscards"}
	cs := []counters.Counter{
		{Source: counters.ProcNetSNMP, Field: "Udp:RcvbufErrors"},
		{Source: counters.ProcNetSNMP6, Field: "Udp6:InErrors"},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPOFODrop"},
		{Source: counters.ProcNetSNMP, Field: "Ip:InDiscards"},
		{Source: counters.ProcNetNetstat, Field: "Udp:RcvbufErrors"},               // the name, from another file
		{Source: counters.ProcNetSNMP, Object: "eth0", Field: "Udp:RcvbufErrors"},  // an object
		{Source: counters.ProcNetSNMP, Field: "Udp:NoPorts"},                       // another name
		{Source: counters.ProcNetDevSNMP6, Object: "eth0", Field: "Ip6InDiscards"}, // another source altogether
	}
	for _, names := range [][]string{{"Udp:RcvbufErrors"}, {"Udp6:InErrors", "TcpExt:TCPOFODrop"}, long, long[:8], long[:9]} {
		m := field(names...)
		for _, c := range cs {
			want := false
			for _, n := range names {
				want = want || c.Key() == (counters.Key{Source: mibSource(n), Field: n})
			}
			if got := m(c); got != want {
				t.Errorf("field(%d names %v)(%s %q %q) = %v, want %v", len(names), names[0], c.Source, c.Object, c.Field, got, want)
			}
		}
	}
}
