package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// short is what these tests compare of a finding.
type short struct {
	Stage    stage.ID
	Severity Severity
	Drops    uint64
}

// analyzeDeltas diagnoses counters that moved from zero to the given values
// over interval, with an optional tracer delta.
func analyzeDeltas(interval time.Duration, tr *droptrace.Snapshot, cs ...counters.Counter) *Report {
	var a []counters.Counter
	for _, c := range cs {
		c.Value = 0
		a = append(a, c)
	}
	return AnalyzeWith(snap(sys, a...), snap(sys, cs...), interval, Extra{Trace: tr})
}

// TestUnitsAndFloors holds the examples of issue 12: counters that are not
// packet drops never read as lost packets, a single event is never a
// warning, and the tracer's exact count is a stage's drops when its counters
// count something else.
func TestUnitsAndFloors(t *testing.T) {
	const netstat, snmp, snmp6, arp = counters.ProcNetNetstat, counters.ProcNetSNMP, counters.ProcNetSNMP6, counters.ProcNetStatARPCache
	neighFailed := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 256, Reason: "NEIGH_FAILED", Location: "neigh_invalidate+0x1", Function: "neigh_invalidate", Stage: stage.Neighbor},
	}}
	tests := []struct {
		name string
		tr   *droptrace.Snapshot
		cs   []counters.Counter
		want []short
		// title is a part of the first finding's title.
		title string
	}{
		{
			// Before: "[WARNING] socket-rcvbuf … lost 30 packets".
			name:  "a window closed to zero is flow control, not loss",
			cs:    []counters.Counter{ctr(netstat, "", "TcpExt:TCPToZeroWindowAdv", 30, stage.SocketRcvbuf)},
			want:  []short{{stage.SocketRcvbuf, Info, 0}},
			title: "windows closed to zero 30 times",
		},
		{
			name: "zero windows sustained are a warning, still without lost packets",
			cs:   []counters.Counter{ctr(netstat, "", "TcpExt:TCPToZeroWindowAdv", 3000, stage.SocketRcvbuf)},
			want: []short{{stage.SocketRcvbuf, Warning, 0}},
		},
		{
			// Before: "lost 1 packets", warning.
			name:  "a failed resolution is not a packet",
			cs:    []counters.Counter{ctr(arp, "", "res_failed", 1, stage.Neighbor)},
			want:  []short{{stage.Neighbor, Info, 0}},
			title: "1 ARP/NDP resolution failed",
		},
		{
			// Before: an ip warning.
			name: "one ICMPv6 error is information",
			cs:   []counters.Counter{ctr(snmp6, "", "Icmp6:InErrors", 1, stage.IP)},
			want: []short{{stage.IP, Info, 1}},
		},
		{
			// Before: tx-socket first, neighbour "lost 1 packets".
			name: "the tracer's exact count outranks one send error",
			tr:   neighFailed,
			cs: []counters.Counter{
				ctr(arp, "", "res_failed", 1, stage.Neighbor),
				ctr(snmp, "", "Udp:SndbufErrors", 1, stage.TxSocket),
			},
			want:  []short{{stage.Neighbor, Critical, 256}, {stage.TxSocket, Info, 1}},
			title: "256 packets dropped",
		},
		{
			name: "packets lost at a trickle are a warning, at a rate critical",
			cs: []counters.Counter{
				ctr(snmp, "", "Udp:NoPorts", 5, stage.NoSocket),
				ctr(snmp, "", "Udp:RcvbufErrors", 500, stage.SocketRcvbuf),
			},
			want: []short{{stage.SocketRcvbuf, Critical, 500}, {stage.NoSocket, Warning, 5}},
		},
		{
			// Before: two neighbour findings, one from the rule and one
			// from the generic fallback.
			name: "one finding per stage",
			cs: []counters.Counter{
				ctr(arp, "", "unresolved_discards", 40, stage.Neighbor),
				ctr(arp, "", "res_failed", 4, stage.Neighbor),
				ctr(arp, "", "some_new_column", 7, stage.Neighbor),
			},
			want: []short{{stage.Neighbor, Critical, 40}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := analyzeDeltas(5*time.Second, tt.tr, tt.cs...)
			var got []short
			for _, f := range r.Findings {
				got = append(got, short{f.Stage, f.Severity, f.Drops})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if tt.title != "" && len(r.Findings) > 0 && !strings.Contains(r.Findings[0].Title, tt.title) {
				t.Errorf("title %q lacks %q", r.Findings[0].Title, tt.title)
			}
		})
	}
}

// TestTracerAndCountersDisagree: both count packets at one stage and differ
// by more than 5%: the finding keeps the counters' figure and says so.
func TestTracerAndCountersDisagree(t *testing.T) {
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 800, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc", Function: "__udp4_lib_rcv", Stage: stage.NoSocket},
	}}
	for _, tc := range []struct {
		counted uint64
		note    bool
	}{{1000, true}, {820, false}} {
		r := analyzeDeltas(5*time.Second, tr, ctr(counters.ProcNetSNMP, "", "Udp:NoPorts", tc.counted, stage.NoSocket))
		f := r.Findings[0]
		if f.Drops != tc.counted {
			t.Errorf("counted %d: drops %d", tc.counted, f.Drops)
		}
		if got := len(f.Notes) == 1 && strings.Contains(f.Notes[0], "disagree"); got != tc.note {
			t.Errorf("counted %d, traced 800: notes %q, want a disagreement note %v", tc.counted, f.Notes, tc.note)
		}
	}
}

// TestSeverityFloors checks the table's floors directly.
func TestSeverityFloors(t *testing.T) {
	in := newInput(snap(sys), snap(sys), 5*time.Second)
	once := newInput(snap(sys), snap(sys), 0)
	tests := []struct {
		in   *input
		unit counters.Unit
		n    uint64
		want Severity
	}{
		{in, counters.Drops, 0, Info},
		{in, counters.Drops, 1, Info},
		{in, counters.Drops, 3, Warning},
		{in, counters.Drops, 9, Warning},
		{in, counters.Drops, 10, Critical},
		{once, counters.Drops, 1000, Warning},
		{in, counters.Events, 1, Info},
		{in, counters.Events, 49, Info},
		{in, counters.Events, 50, Warning},
		{in, counters.NearDrops, 49, Info},
		{in, counters.NearDrops, 100000, Warning},
		{once, counters.NearDrops, 100000, Info},
		{in, counters.Level, 100000, Info},
	}
	for _, tt := range tests {
		if got := tt.in.severityOf(tt.unit, tt.n); got != tt.want {
			t.Errorf("%s %d (once %v): %s, want %s", tt.unit, tt.n, tt.in.once(), got, tt.want)
		}
	}
}

// TestUnspecifiedFreesAreNotGradedAsLoss: the lab's time-wait-ports
// scenario's tracer sees 0 to 32 NOT_SPECIFIED frees at tcp_v4_rcv
// (segments its TIME_WAIT sockets absorbed). They once made a TCP finding
// that outranked the ports finding now and then; they are information.
func TestUnspecifiedFreesAreNotGradedAsLoss(t *testing.T) {
	for _, n := range []uint64{1, 17, 32} {
		tr := &droptrace.Snapshot{Rows: []droptrace.Row{
			{Count: n, Reason: "NOT_SPECIFIED", Location: "tcp_v4_rcv+0x1a4", Function: "tcp_v4_rcv", Stage: stage.TCP},
		}}
		r := analyzeDeltas(time.Second, tr)
		if len(r.Findings) != 1 || r.Findings[0].Severity != Info || r.Findings[0].Drops != n || len(r.Findings[0].Notes) != 1 {
			t.Errorf("%d NOT_SPECIFIED frees: %+v", n, r.Findings)
		}
	}
	// With a reason, the same count is a drop graded as any other.
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 32, Reason: "TCP_INVALID_SEQUENCE", Location: "tcp_validate_incoming+0x1", Function: "tcp_validate_incoming", Stage: stage.TCP},
	}}
	if r := analyzeDeltas(time.Second, tr); r.Findings[0].Severity != Warning {
		t.Errorf("32 TCP_INVALID_SEQUENCE drops: %s, want warning", r.Findings[0].Severity)
	}
}
