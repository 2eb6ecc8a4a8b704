package exporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/stage"
)

// fakeTracer returns its snapshots in turn.
type fakeTracer struct {
	snaps []droptrace.Snapshot
	err   error
}

func (f *fakeTracer) Snapshot() (droptrace.Snapshot, error) {
	if f.err != nil {
		return droptrace.Snapshot{}, f.err
	}
	s := f.snaps[0]
	if len(f.snaps) > 1 {
		f.snaps = f.snaps[1:]
	}
	return s, nil
}

func row(reason, loc string, st stage.ID, n uint64) droptrace.Row {
	return droptrace.Row{Reason: reason, Location: loc, Stage: st, Count: n}
}

func traceOpts(tr Tracer, max int) Options {
	return Options{
		FS: counters.NewFS("testdata/before"), Sources: []counters.Source{counters.SNMPSource{}},
		NoSockets: true, Tracer: tr, TraceSeries: max,
	}
}

func TestTraceCollector(t *testing.T) {
	tr := &fakeTracer{snaps: []droptrace.Snapshot{
		{Rows: []droptrace.Row{
			row("NO_SOCKET", "__udp4_lib_rcv+0x9a1", stage.NoSocket, 40),
			// Same reason and location in two namespaces: one series.
			row("NO_SOCKET", "__udp4_lib_rcv+0x9a1", stage.NoSocket, 2),
			row("NETFILTER_DROP", "nf_hook_slow+0xa5", stage.Netfilter, 7),
			row("SOCKET_RCVBUFF", "__udp_enqueue_schedule_skb+0x2a0", stage.SocketRcvbuf, 1),
		}, Noise: []droptrace.Row{row("NOT_SPECIFIED", "skb_queue_purge+0x1", "", 9)}, Unattributed: 3},
		{Rows: []droptrace.Row{
			row("NO_SOCKET", "__udp4_lib_rcv+0x9a1", stage.NoSocket, 50),
			row("NETFILTER_DROP", "nf_hook_slow+0xa5", stage.Netfilter, 7),
			row("SOCKET_RCVBUFF", "__udp_enqueue_schedule_skb+0x2a0", stage.SocketRcvbuf, 30),
			row("TCP_LISTEN_OVERFLOW", "tcp_conn_request+0x1", stage.TCPListen, 100),
		}},
	}}
	opts := traceOpts(tr, 2)
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(reg, opts)
	first := scrapeText(t, h)
	for series, want := range map[string]string{
		`netdrop_trace_drops_total{location="__udp4_lib_rcv+0x9a1",reason="NO_SOCKET",stage="no-socket"}`:   "42",
		`netdrop_trace_drops_total{location="nf_hook_slow+0xa5",reason="NETFILTER_DROP",stage="netfilter"}`: "7",
		`netdrop_trace_drops_other_total`:                     "1",
		`netdrop_trace_noise_total{reason="NOT_SPECIFIED"}`:   "9",
		`netdrop_trace_unattributed_total`:                    "3",
		`netdrop_scrape_collector_success{collector="trace"}`: "1",
	} {
		if got := sample(t, first, series); got != want {
			t.Errorf("first scrape %s = %s, want %s", series, got, want)
		}
	}
	// The two admitted keys keep their series even when a bigger one
	// appears; the newcomers add to the overflow, which only grows.
	second := scrapeText(t, h)
	if got := sample(t, second, `netdrop_trace_drops_other_total`); got != "130" {
		t.Errorf("second scrape overflow = %s, want 130", got)
	}
	if strings.Contains(second, "TCP_LISTEN_OVERFLOW") {
		t.Error("a key beyond the series limit got its own series")
	}

	tr.err = errors.New("tracer closed")
	third := scrapeText(t, h)
	if got := sample(t, third, `netdrop_scrape_collector_success{collector="trace"}`); got != "0" {
		t.Errorf("failed tracer: success = %s, want 0", got)
	}
}

// TestTraceKernel attaches the real tracer to a test namespace, sends UDP
// to a port nobody listens on, and compares the exported NO_SOCKET drops
// with nstat's UdpNoPorts.
func TestTraceKernel(t *testing.T) {
	testnet.RequireRoot(t)
	p := testnet.NewPair(t, "expt")
	tr, err := droptrace.Start(context.Background(), droptrace.Options{Netns: p.B})
	switch {
	case errors.Is(err, droptrace.ErrNotSupported):
		t.Skipf("kernel cannot trace drops: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	opts := Options{Netns: counters.NamedNetns(p.B), NoSockets: true, Tracer: tr}
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(reg, opts)
	before := testnet.Nstat(t, p.B, "UdpNoPorts")
	sent := testnet.SendUDP(t, p.A, fmt.Sprintf("%s:9", p.AddrB), 300, 64)
	ref := testnet.Nstat(t, p.B, "UdpNoPorts") - before
	if ref == 0 {
		t.Fatalf("sent %d datagrams to a closed port, nstat UdpNoPorts did not move", sent)
	}
	text := scrapeText(t, h)
	var got uint64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "netdrop_trace_drops_total{") && strings.Contains(line, `reason="NO_SOCKET"`) {
			if !strings.Contains(line, `stage="no-socket"`) {
				t.Errorf("NO_SOCKET drop mapped to the wrong stage: %s", line)
			}
			var v float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			got += uint64(v)
		}
	}
	if got != ref {
		t.Errorf("netdrop_trace_drops_total NO_SOCKET = %d, nstat UdpNoPorts moved %d", got, ref)
	}
}
