package exporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/probe"
	"github.com/netdrop/netdrop/stage"
)

// TestHopReading serves /probe/drops from fixture counters and a fake
// tracer and reads it back with HopClient: the rows keep only the probe's
// flow, /metrics still answers, and a hop without a tracer says so.
func TestHopReading(t *testing.T) {
	k := probe.FlowKey{Src: netip.MustParseAddrPort("10.9.1.1:40000"), Dst: netip.MustParseAddrPort("10.9.2.2:4790")}
	mine := droptrace.Flow{Proto: "udp", Src: "10.9.1.1:40000", Dst: "10.9.2.2:4790", Count: 7}
	other := droptrace.Flow{Proto: "udp", Src: "10.9.1.5:1234", Dst: "10.9.2.2:4790", Count: 90}
	nft := droptrace.Row{Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x3e8", Stage: stage.Netfilter, Count: 97, Flows: []droptrace.Flow{mine, other}}
	qd := droptrace.Row{Reason: "QDISC_DROP", Location: "__dev_queue_xmit+0x7e1", Stage: stage.Qdisc, Count: 4, Flows: []droptrace.Flow{other}}
	tr := &fakeTracer{snaps: []droptrace.Snapshot{{Rows: []droptrace.Row{nft, qd}}}}

	for _, tc := range []struct {
		name   string
		tracer Tracer
		flows  bool
		want   []droptrace.Row
		traced bool
		note   string
	}{
		{name: "flows", tracer: tr, flows: true, traced: true,
			want: []droptrace.Row{{Reason: "NETFILTER_DROP", Location: "nft_do_chain+0x3e8", Stage: stage.Netfilter, Count: 97, Flows: []droptrace.Flow{mine}}}},
		{name: "no flows", tracer: tr, traced: true, want: []droptrace.Row{nft, qd}},
		{name: "no tracer", note: "not traced: its exporter runs without --trace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := traceOpts(tc.tracer, 0)
			if tc.tracer == nil {
				opts.Tracer = nil
			}
			reg, _, err := NewRegistry(opts)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(WithHop(Handler(reg, opts), opts, tc.flows))
			defer srv.Close()
			rd, err := HopClient{URL: srv.URL + "/"}.Read(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rd.Trace, cmp.Comparer(func(a, b droptrace.Row) bool {
				return a.Reason == b.Reason && a.Location == b.Location && a.Count == b.Count && cmp.Equal(a.Flows, b.Flows)
			})); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if rd.Traced != tc.traced || rd.TraceFlows != (tc.flows && tc.traced) || rd.TraceNote != tc.note {
				t.Errorf("traced %v flows %v note %q; want %v %v %q", rd.Traced, rd.TraceFlows, rd.TraceNote, tc.traced, tc.flows, tc.note)
			}
			if rd.Counters == nil || len(rd.Counters.Counters) == 0 {
				t.Errorf("no counters in the reading")
			}
			resp, err := http.Get(srv.URL + "/metrics")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("/metrics beside the hop path: %v %v", resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		})
	}
}

func TestHopClientErrors(t *testing.T) {
	old := httptest.NewServer(http.NotFoundHandler())
	defer old.Close()
	bad := httptest.NewServer(Handler(prometheus.NewRegistry(), Options{}))
	defer bad.Close()
	for _, u := range []string{old.URL, "ftp://x", "http://[::1"} {
		if _, err := (HopClient{URL: u}).Read(context.Background(), probe.FlowKey{}); err == nil {
			t.Errorf("%s: read without error", u)
		}
	}
	resp, err := http.Get(bad.URL + probe.HopPath + "?flow=tcp,1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("plain Handler serves %s: %s", probe.HopPath, resp.Status)
	}
	opts := Options{FS: counters.NewFS("testdata/before"), Sources: []counters.Source{counters.SNMPSource{}}, NoSockets: true}
	srv := httptest.NewServer(WithHop(http.NotFoundHandler(), opts, false))
	defer srv.Close()
	resp, err = http.Get(srv.URL + probe.HopPath + "?flow=tcp,1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad flow: %s, want 400", resp.Status)
	}
}
