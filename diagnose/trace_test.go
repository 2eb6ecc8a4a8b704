package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

func TestTraceFoldsIntoFindings(t *testing.T) {
	a := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:NoPorts", 0, stage.NoSocket))
	b := snap(sys, ctr(counters.ProcNetSNMP, "", "Udp:NoPorts", 500, stage.NoSocket))
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 500, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc", Function: "__udp4_lib_rcv", Stage: stage.NoSocket},
		{Count: 70, Reason: "QDISC_DROP", Location: "__dev_queue_xmit+0x8c1", Function: "__dev_queue_xmit", Stage: stage.Qdisc},
		{Count: 3, Reason: "VXLAN_INVALID_HDR", Location: "vxlan_rcv+0x12", Function: "vxlan_rcv"},
		{Count: 900, Reason: "TCP_OLD_ACK", Location: "tcp_ack+0x1", Function: "tcp_ack", Stage: stage.TCP},
	}}
	r := AnalyzeWith(a, b, 5*time.Second, Extra{Trace: tr})
	if !r.Traced {
		t.Error("Traced = false")
	}
	if len(r.Findings) != 3 {
		t.Fatalf("findings: %+v", r.Findings)
	}
	// A TCP discard seen only by the tracer is a warning, like its
	// counters: it ranks after the loss.
	if last := r.Findings[2]; last.Stage != stage.TCP || last.Severity != Warning || last.Drops != 900 {
		t.Errorf("tcp finding = %+v", last)
	}
	ns := r.Findings[0]
	if ns.Stage != stage.NoSocket || len(ns.Evidence) != 2 || ns.Evidence[1].Source != SourceTracer || ns.Evidence[1].Delta != 500 {
		t.Errorf("no-socket finding lacks the tracer's evidence: %+v", ns)
	}
	q := r.Findings[1]
	if q.Stage != stage.Qdisc || q.Drops != 70 || !strings.Contains(q.Title, "QDISC_DROP") {
		t.Errorf("a traced drop no counter explains should be a finding of its own: %+v", q)
	}
	if len(r.Unexplained) != 1 || r.Unexplained[0].Reason != "VXLAN_INVALID_HDR" || r.Unexplained[0].Drops != 3 {
		t.Errorf("unexplained = %+v", r.Unexplained)
	}
}
