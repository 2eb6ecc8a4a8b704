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
