package diagnose

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

func TestSocketEvidenceNamesWhoIsResponsible(t *testing.T) {
	sum := &sockets.Summary{
		Settings: sockets.Settings{PortLow: 40000, PortHigh: 40099, TwReuse: 2, Timestamps: 1},
		Destinations: []sockets.Destination{{
			Remote: netip.MustParseAddrPort("10.9.0.2:80"), Sockets: 97, TimeWait: 95, EphemeralInUse: 97,
			Share: 0.97, Severity: "critical", TwReuse: sockets.TwReuseWouldHelp,
		}},
		Listeners: []sockets.Listener{{
			Local: netip.MustParseAddrPort("0.0.0.0:8080"), Queued: 2, Backlog: 1, Full: true, Drops: 12,
			Processes: []sockets.Process{{PID: 42, Comm: "server"}},
		}},
	}
	a := snap(sys, ctr(counters.ProcNetNetstat, "", "TcpExt:ListenOverflows", 0, stage.TCPListen))
	b := snap(sys, ctr(counters.ProcNetNetstat, "", "TcpExt:ListenOverflows", 12, stage.TCPListen))
	r := AnalyzeWith(a, b, 5*time.Second, Extra{Sockets: sum})
	if len(r.Findings) < 2 {
		t.Fatalf("findings = %+v", r.Findings)
	}
	// tcp-listen lost packets, ports did not (yet): listen ranks first.
	listen, ports := r.Findings[0], r.Findings[1]
	if ports.Stage != stage.Ports || ports.Severity != Critical || !strings.Contains(ports.Title, "10.9.0.2:80") {
		t.Errorf("ports finding = %+v", ports)
	}
	if !contains(ports.Fix, "sysctl -w net.ipv4.tcp_tw_reuse=1  # now 2; lets connect() take over TIME_WAIT ports to this destination") {
		t.Errorf("ports fix = %q", fixLines(ports.Fix))
	}
	if listen.Stage != stage.TCPListen || !strings.Contains(listen.Title, "0.0.0.0:8080 (server(42))") {
		t.Errorf("listen finding = %+v", listen)
	}
}

func TestFullAcceptQueueIsANearDrop(t *testing.T) {
	sum := &sockets.Summary{Listeners: []sockets.Listener{{Local: netip.MustParseAddrPort("[::]:443"), Queued: 129, Backlog: 128, Full: true}}}
	r := AnalyzeWith(&counters.Snapshot{}, &counters.Snapshot{}, time.Second, Extra{Sockets: sum})
	if len(r.Findings) != 1 || r.Findings[0].Stage != stage.TCPListen || r.Findings[0].Severity != Warning {
		t.Fatalf("findings = %+v", r.Findings)
	}
}

// TestRcvbufCulpritsOncePerSocket: a socket that dropped in the interval
// and is still near its buffer is in both the drops between the views and
// the second view's pressured sockets; it is named once, by its drops in
// the interval.
func TestRcvbufCulpritsOncePerSocket(t *testing.T) {
	udpA := netip.MustParseAddrPort("10.0.0.2:53")
	udpB := netip.MustParseAddrPort("10.0.0.2:514")
	tcpL := netip.MustParseAddrPort("10.0.0.2:5026")
	tcpR := netip.MustParseAddrPort("10.0.0.1:40000")
	dropped := func(proto string, l, r netip.AddrPort) sockets.Dropped {
		return sockets.Dropped{Protocol: proto, Local: l, Remote: r, Drops: 7, Rcvbuf: 4608, RmemAlloc: 4600}
	}
	near := func(proto string, l, r netip.AddrPort) sockets.PressuredSocket {
		return sockets.PressuredSocket{Protocol: proto, Local: l, Remote: r, Drops: 9, Rcvbuf: 4608, RmemAlloc: 4600, Fill: 0.998}
	}
	tests := []struct {
		name             string
		before           bool
		dropped          []sockets.Dropped
		pressure         []sockets.PressuredSocket
		wantUDP, wantTCP []string // evidence fields
	}{
		{"udp dropped and near full", true,
			[]sockets.Dropped{dropped("udp", udpA, netip.AddrPort{})}, []sockets.PressuredSocket{near("udp", udpA, netip.AddrPort{})},
			[]string{"10.0.0.2:53 drops in the interval"}, nil},
		{"tcp dropped and near full", true,
			[]sockets.Dropped{dropped("tcp", tcpL, tcpR)}, []sockets.PressuredSocket{near("tcp", tcpL, tcpR)},
			nil, []string{"10.0.0.2:5026 drops in the interval"}},
		{"another socket near full", true,
			[]sockets.Dropped{dropped("udp", udpA, netip.AddrPort{})}, []sockets.PressuredSocket{near("udp", udpB, netip.AddrPort{})},
			[]string{"10.0.0.2:53 drops in the interval", "10.0.0.2:514 drops since creation"}, nil},
		{"no first view", false,
			nil, []sockets.PressuredSocket{near("udp", udpA, netip.AddrPort{})},
			[]string{"10.0.0.2:53 drops since creation"}, nil},
	}
	names := func(cs []culprit) []string {
		var out []string
		for _, c := range cs {
			_, what, _ := strings.Cut(c.evidence.Field, ", queued 4600, ")
			out = append(out, c.local+" "+what)
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &input{sockets: &sockets.Summary{Pressure: tt.pressure}, dropped: tt.dropped}
			if tt.before {
				in.socketsBefore = &sockets.Summary{}
			}
			udp, tcp := rcvbufCulprits(in)
			if d := cmp.Diff(tt.wantUDP, names(udp)); d != "" {
				t.Errorf("udp culprits (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantTCP, names(tcp)); d != "" {
				t.Errorf("tcp culprits (-want +got):\n%s", d)
			}
		})
	}
}

// TestTCPOutOfOrderPrune is the lab's tcp-rcv-prune in counters: the
// out-of-order queue overran a receive buffer the application fixed at 16
// KiB. The loss is the segments TCPOFODrop counts, on the socket's stage
// (not TCP's invalid segments); the prunes (PruneCalled, RcvPruned) are
// events beside it, never added to it; and the fix names the socket's
// SO_RCVBUF, which for TCP only a buffer below tcp_rmem's default earns
// (an autotuned socket must not get one).
func TestTCPOutOfOrderPrune(t *testing.T) {
	const netstat = counters.ProcNetNetstat
	sysctls := map[string]string{"net.core.rmem_max": "4194304", "net.ipv4.tcp_rmem": "4096\t131072\t33554432"}
	moved := []counters.Counter{
		ctr(netstat, "", "TcpExt:TCPOFODrop", 344, stage.SocketRcvbuf),
		ctr(netstat, "", "TcpExt:RcvPruned", 344, stage.SocketRcvbuf),
		ctr(netstat, "", "TcpExt:PruneCalled", 344, stage.SocketRcvbuf),
	}
	zero := func() []counters.Counter {
		var out []counters.Counter
		for _, c := range moved {
			c.Value = 0
			out = append(out, c)
		}
		return out
	}
	local := netip.MustParseAddrPort("10.231.0.2:5021")
	view := func(rcvbuf, drops uint32) *sockets.Summary {
		return &sockets.Summary{Pressure: []sockets.PressuredSocket{{Cookie: 7, Protocol: "tcp", Local: local,
			Remote: netip.MustParseAddrPort("10.231.0.1:41001"), Drops: drops, Rcvbuf: rcvbuf, RmemAlloc: rcvbuf, Fill: 1}}}
	}
	tests := []struct {
		name    string
		rcvbuf  uint32
		wantApp bool
	}{
		{"SO_RCVBUF set by the application", 16384, true},
		{"autotuned buffer", 262144, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := AnalyzeWith(snap(sysctls, zero()...), snap(sysctls, moved...), time.Second,
				Extra{SocketsBefore: view(tt.rcvbuf, 0), Sockets: view(tt.rcvbuf, 344)})
			if len(r.Findings) != 1 {
				t.Fatalf("findings = %+v, want one at socket-rcvbuf", r.Findings)
			}
			f := r.Findings[0]
			if f.Stage != stage.SocketRcvbuf || f.Drops != 344 || !strings.Contains(f.Title, "out-of-order queues overran") {
				t.Errorf("finding = %s %d %q, want socket-rcvbuf, 344 drops, out-of-order", f.Stage, f.Drops, f.Title)
			}
			var app *AppChange
			for _, x := range f.Fix {
				if x.Kind == FixApp && x.App.Param == AppRcvbuf {
					app = x.App
				}
			}
			if got := app != nil; got != tt.wantApp {
				t.Fatalf("SO_RCVBUF fix %v, want %v (fixes %q)", got, tt.wantApp, fixLines(f.Fix))
			}
			if app != nil && (app.Proto != "tcp" || app.Socket != local.String() || app.Current != uint64(tt.rcvbuf)) {
				t.Errorf("SO_RCVBUF fix = %+v, want the tcp socket %s now at %d", app, local, tt.rcvbuf)
			}
		})
	}
}

// TestTCPNearFullAdvice: a TCP connection at its buffer, no drop yet, gets
// TCP's advice (not recvmmsg and SO_REUSEPORT, which are UDP's), and the
// SO_RCVBUF fix only when its application fixed a small buffer.
func TestTCPNearFullAdvice(t *testing.T) {
	sysctls := map[string]string{"net.ipv4.tcp_rmem": "4096\t131072\t33554432"}
	for _, tt := range []struct {
		rcvbuf  uint32
		wantApp bool
	}{{16384, true}, {6291456, false}} {
		sum := &sockets.Summary{Pressure: []sockets.PressuredSocket{{Cookie: 1, Protocol: "tcp", Local: netip.MustParseAddrPort("10.0.0.2:5021"),
			Remote: netip.MustParseAddrPort("10.0.0.1:41001"), Rcvbuf: tt.rcvbuf, RmemAlloc: tt.rcvbuf, Fill: 1}}}
		r := AnalyzeWith(snap(sysctls), snap(sysctls), time.Second, Extra{SocketsBefore: sum, Sockets: sum})
		if len(r.Findings) != 1 {
			t.Fatalf("rcvbuf %d: findings = %+v", tt.rcvbuf, r.Findings)
		}
		f := r.Findings[0]
		if strings.Contains(f.Advice, "recvmmsg") || !strings.Contains(f.Cause, "not reading these connections") {
			t.Errorf("rcvbuf %d: cause %q, advice %q", tt.rcvbuf, f.Cause, f.Advice)
		}
		app := false
		for _, x := range f.Fix {
			app = app || x.Kind == FixApp
		}
		if app != tt.wantApp {
			t.Errorf("rcvbuf %d: SO_RCVBUF fix %v, want %v: %q", tt.rcvbuf, app, tt.wantApp, fixLines(f.Fix))
		}
	}
}
