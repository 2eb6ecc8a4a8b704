package diagnose

import (
	"net/netip"
	"strings"
	"testing"
	"time"

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
