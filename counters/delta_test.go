package counters

import (
	"slices"
	"testing"
)

// TestDelta checks the deltas of two snapshots whose counters come in the
// same order (looked up where expected) and in another (looked up by key):
// wraps, resets, gauges and counters new in the second.
func TestDelta(t *testing.T) {
	c := func(obj, field string, v uint64) Counter {
		return Counter{Source: NetlinkLinkStats, Object: obj, Field: field, Value: v}
	}
	gauge := Counter{Source: ProcSysConntrackCount, Field: "nf_conntrack_count", Value: 50, Gauge: true}
	wrap := Counter{Source: ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Value: 5, Bits: 32}
	before := []Counter{c("eth0", "rx_dropped", 10), c("eth0", "tx_dropped", 7), c("lo", "rx_dropped", 3), gauge, wrap}
	after := func(cs ...Counter) *Snapshot { return &Snapshot{Counters: cs} }
	g2, w2 := gauge, wrap
	g2.Value, w2.Value = 40, 2
	tests := []struct {
		name  string
		after *Snapshot
		want  []uint64
	}{
		{"same order", after(c("eth0", "rx_dropped", 15), c("eth0", "tx_dropped", 7), c("lo", "rx_dropped", 4), g2, w2), []uint64{5, 0, 1, 40, 1<<32 - 3}},
		{"reordered", after(c("lo", "rx_dropped", 4), w2, c("eth0", "tx_dropped", 9), g2, c("eth0", "rx_dropped", 15)), []uint64{1, 1<<32 - 3, 2, 40, 5}},
		{"a new interface first", after(c("veth1", "rx_dropped", 8), c("eth0", "rx_dropped", 15), c("eth0", "tx_dropped", 7), c("lo", "rx_dropped", 4)), []uint64{8, 5, 0, 1}},
		{"one gone", after(c("eth0", "tx_dropped", 8), c("lo", "rx_dropped", 3)), []uint64{1, 0}},
		{"a reset", after(c("eth0", "rx_dropped", 2)), []uint64{2}},
		{"same name, other object", after(c("eth1", "rx_dropped", 15)), []uint64{15}},
	}
	for _, tt := range tests {
		d := Delta(&Snapshot{Counters: before}, tt.after)
		var got []uint64
		for _, c := range d.Counters {
			got = append(got, c.Value)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: deltas %v, want %v", tt.name, got, tt.want)
		}
	}
}
