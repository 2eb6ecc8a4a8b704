package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// TestMQFixesItsChildren: a multiqueue interface's mq root counts the drops
// of its per-queue children. The fix replaces the children that dropped,
// most first, and never the mq root (one fq_codel would serialise every
// transmit queue behind one lock).
func TestMQFixesItsChildren(t *testing.T) {
	q := counters.NetlinkQdisc
	at := func(v1, v2, v3 uint64) []counters.Counter {
		return []counters.Counter{
			ctr(q, "eth0 mq 0:", "drops", v1+v2+v3, stage.Qdisc),
			ctr(q, "eth0 pfifo_fast 0: parent :1", "drops", v1, ""),
			ctr(q, "eth0 pfifo_fast 0: parent :2", "drops", v2, ""),
			ctr(q, "eth0 pfifo_fast 0: parent :3", "drops", v3, ""),
		}
	}
	tests := []struct {
		name   string
		before []counters.Counter
		after  []counters.Counter
		want   []string // tc lines
	}{
		{"two queues dropped", at(0, 0, 0), at(100, 400, 0), []string{
			"tc qdisc replace dev eth0 parent :2 fq_codel  # now pfifo_fast; fair queueing on transmit queue :2, which dropped 400; mq stays the root",
			"tc qdisc replace dev eth0 parent :1 fq_codel  # now pfifo_fast; fair queueing on transmit queue :1, which dropped 100; mq stays the root",
		}},
		{"children not read", at(0, 0, 0)[:1], []counters.Counter{ctr(q, "eth0 mq 0:", "drops", 300, stage.Qdisc)}, []string{
			"tc -s qdisc show dev eth0  # mq's children, one per transmit queue (parent :N), with their drops",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := AnalyzeWith(snap(sys, tt.before...), snap(sys, tt.after...), 5*time.Second, Extra{})
			if len(r.Findings) != 1 || r.Findings[0].Stage != stage.Qdisc {
				t.Fatalf("findings = %+v", r.Findings)
			}
			var tc []string
			for _, l := range fixLines(r.Findings[0].Fix) {
				if strings.HasPrefix(l, "tc ") {
					tc = append(tc, l)
				}
			}
			if d := cmp.Diff(tt.want, tc); d != "" {
				t.Errorf("tc fixes (-want +got):\n%s", d)
			}
		})
	}
}
