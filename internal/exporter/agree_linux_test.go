package exporter

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/testnet"
)

// exporterReport runs the counters and stages collectors of e for one
// scrape and returns the diagnosis the scrape made (nil on the first).
func exporterReport(t *testing.T, e *Exporter) *diagnose.Report {
	t.Helper()
	ch := make(chan prometheus.Metric)
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	s := &scrape{}
	for _, c := range e.collectors {
		if c.name() != "counters" && c.name() != "stages" {
			continue
		}
		if err := c.update(context.Background(), s, ch); err != nil {
			t.Errorf("collector %s: %v", c.name(), err)
		}
	}
	close(ch)
	<-done
	return s.report
}

// TestFindingsAgreeWithDiagnose: for one namespace and one interval, the
// exporter's findings are diagnose's. The drops are UDP receive-buffer
// overflows in a fresh namespace, whose fix names net.core.rmem_max: a
// global setting the namespace's own /proc/sys does not show, so the
// findings agree only if both take the same (host-merged) snapshot.
func TestFindingsAgreeWithDiagnose(t *testing.T) {
	p := testnet.NewPair(t, "agree")
	// A fresh link's IPv6 autoconfiguration (router and neighbour
	// solicitations) would move counters in diagnose's interval but
	// not in the exporter's shorter one inside it: no IPv6 here.
	for _, ns := range []string{p.A, p.B} {
		testnet.In(t, ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	conn := testnet.ListenUDP(t, p.B, net.JoinHostPort(p.AddrB.String(), "5999"))
	if err := conn.SetReadBuffer(2048); err != nil {
		t.Fatal(err)
	}
	e := New(Options{Netns: counters.NamedNetns(p.B), NoSockets: true})
	var fromExporter *diagnose.Report
	ctx := context.Background()
	got, err := diagnose.Run(ctx, diagnose.Options{
		Netns: counters.NamedNetns(p.B), Trace: "off", NoSockets: true,
		During: func(context.Context) error {
			// The exporter's interval lies inside diagnose's, and
			// nothing but this traffic happens in the namespace.
			exporterReport(t, e)
			testnet.SendUDP(t, p.A, net.JoinHostPort(p.AddrB.String(), "5999"), 300, 512)
			fromExporter = exporterReport(t, e)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if fromExporter == nil {
		t.Fatal("the exporter made no diagnosis on its second scrape")
	}
	if len(got.Findings) == 0 {
		t.Fatalf("diagnose found nothing after 300 datagrams into a 2 KiB buffer; unavailable: %+v", got.Unavailable)
	}
	// Host-wide findings (a CPU's share of NET_RX) are graded by rates
	// over the whole host, and the two intervals differ in length; the
	// namespace's own findings depend only on its drops.
	own := func(fs []diagnose.Finding) []diagnose.Finding {
		var out []diagnose.Finding
		for _, f := range fs {
			if !f.HostWide {
				out = append(out, f)
			}
		}
		return out
	}
	ignore := cmpopts.IgnoreFields(diagnose.Finding{}, "Rate")
	if diff := cmp.Diff(own(got.Findings), own(fromExporter.Findings), ignore, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("findings differ (-diagnose +exporter):\n%s", diff)
	}
	if fromExporter.Netns != got.Netns {
		t.Errorf("netns label: diagnose %q, exporter %q", got.Netns, fromExporter.Netns)
	}
	// The host's value of the global limit reached the fix.
	found := false
	for _, f := range got.Findings {
		for _, x := range f.Fix {
			found = found || strings.Contains(x.Command, "net.core.rmem_max") && x.Now != ""
		}
	}
	if !found {
		t.Errorf("no fix names net.core.rmem_max with its current value: %+v", got.Findings)
	}
}
