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
			Evidence: []diagnose.Evidence{{Source: counters.ProcNetSNMP, Field: "Udp:RcvbufErrors", Delta: 400}},
			Cause:    "slow reader",
			Fix: []diagnose.Fix{
				{Kind: diagnose.FixSetting, Command: "sysctl -w net.core.rmem_max=26214400", Now: "212992", Note: "the ceiling for SO_RCVBUF",
					Change: &diagnose.Change{Kind: diagnose.ChangeSysctl, Target: "net.core.rmem_max", Current: "212992", Proposed: "26214400"}},
				{Kind: diagnose.FixApp, Text: "SO_RCVBUF=26214400 on udp 10.0.0.2:5000", Now: "8192", Note: "setsockopt before bind",
					App: &diagnose.AppChange{Param: diagnose.AppRcvbuf, Proto: "udp", Socket: "10.0.0.2:5000", Value: 26214400, Current: 8192}},
				{Kind: diagnose.FixManual, Command: "tc qdisc replace dev veth0 root fq_codel", Note: "fair queueing", NotAutomatic: "it replaces the root qdisc"},
				{Kind: diagnose.FixInspect, Command: "netdrop sockets --state listen", Note: "is the service bound?"},
				{Kind: diagnose.FixAdvice, Text: "read faster"},
			},
			NotAutomatic: "no setting makes the reader faster",
		}},
		Unavailable: []counters.Unavailable{{Source: counters.NetlinkNftables, Reason: "needs CAP_NET_ADMIN"}},
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
		"   fix (as root, inside netns web; netdrop tune can apply these):\n     sysctl -w net.core.rmem_max=26214400  # now 212992; the ceiling for SO_RCVBUF\n",
		"   by hand (as root, inside netns web; netdrop does not run these):\n     # it replaces the root qdisc\n     tc qdisc replace dev veth0 root fq_codel  # fair queueing\n",
		"   in the application:\n     - SO_RCVBUF=26214400 on udp 10.0.0.2:5000 (now 8192): setsockopt before bind\n",
		"   check, inside netns web:\n     netdrop sockets --state listen  # is the service bound?\n",
		"   advice: read faster\n",
		"   not automatic: no setting makes the reader faster\n",
		"  - netlink nftables: needs CAP_NET_ADMIN",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

func TestHealthyText(t *testing.T) {
	var b strings.Builder
	if err := Diagnosis(&b, &diagnose.Report{Once: true, Netns: counters.CurrentNetns().String()}); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); !strings.Contains(out, "this host, totals since boot") || !strings.Contains(out, "No drops or near-drops found.") {
		t.Errorf("healthy report:\n%s", out)
	}
}
