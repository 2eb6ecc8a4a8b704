package report

import (
	"strings"
	"testing"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

func TestDiagnosisText(t *testing.T) {
	r := &diagnose.Report{
		IntervalS: 2,
		Netns:     "web",
		Findings: []diagnose.Finding{{
			Stage: stage.SocketRcvbuf, Severity: diagnose.Critical, Title: "UDP receive buffers full",
			Drops: 400, Rate: 200,
			Evidence: []diagnose.Evidence{{Source: "/proc/net/snmp", Counter: "Udp:RcvbufErrors", Delta: 400}},
			Cause:    "slow reader", Fix: []string{"sysctl -w net.core.rmem_max=26214400 (now 212992)"},
		}},
		Unavailable: []counters.Unavailable{{Source: "netlink nftables", Reason: "needs CAP_NET_ADMIN"}},
	}
	for _, s := range stage.All() {
		d := diagnose.StageDrops{Stage: s.ID}
		if s.ID == stage.SocketRcvbuf {
			d.Drops, d.Rate = 400, 200
		}
		r.Stages = append(r.Stages, d)
	}
	var b strings.Builder
	if err := Diagnosis(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"netdrop diagnose — netns web, 2.0s interval",
		"no-socket · → socket-rcvbuf [200/s] → tcp-listen ·",
		"TX ports · →",
		"1. [CRITICAL] socket-rcvbuf — UDP receive buffers full",
		"   lost 400 packets (200/s)",
		"   evidence: Udp:RcvbufErrors +400  [/proc/net/snmp]",
		"   fix: sysctl -w net.core.rmem_max=26214400 (now 212992)",
		"  - netlink nftables: needs CAP_NET_ADMIN",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestHealthyText(t *testing.T) {
	var b strings.Builder
	if err := Diagnosis(&b, &diagnose.Report{Once: true, Netns: "current"}); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "this host, totals since boot") || !strings.Contains(out, "No drops or near-drops found.") {
		t.Errorf("healthy report:\n%s", out)
	}
}
