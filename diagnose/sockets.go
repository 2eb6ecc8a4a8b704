package diagnose

import (
	"fmt"
	"strings"

	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// Socket evidence names who is responsible: which destination holds the
// ephemeral ports, which listener overflows, which socket drops. Counters
// say that it happens; sock_diag says where.

const sockDiag = "sock_diag"

func owners(ps []sockets.Process) string {
	if len(ps) == 0 {
		return ""
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.String())
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// socketPorts reports destinations whose share of the ephemeral range is
// high. With these, the sockstat approximation in rulePorts is not needed.
func socketPorts(in *input) []Finding {
	s := in.sockets
	var out []Finding
	size := s.Settings.PortRangeSize()
	for _, d := range s.Destinations {
		if d.Severity == "" {
			continue
		}
		sev := Warning
		if d.Severity == "critical" {
			sev = Critical
		}
		f := Finding{
			Stage:    stage.Ports,
			Severity: sev,
			Title: fmt.Sprintf("connections to %s use %.0f%% of the ephemeral ports (%d of %d, %d in TIME_WAIT)",
				d.Remote, d.Share*100, d.EphemeralInUse, size, d.TimeWait),
			Evidence: []Evidence{
				{Source: sockDiag, Counter: fmt.Sprintf("tcp sockets to %s", d.Remote), Value: uint64(d.Sockets)},
				{Source: sockDiag, Counter: fmt.Sprintf("TIME_WAIT to %s", d.Remote), Value: uint64(d.TimeWait)},
			},
			Cause: fmt.Sprintf("this host opens short connections to %s and closes them first: each leaves its local port in TIME_WAIT for 60 s, and connect() fails with EADDRNOTAVAIL once the %d ports of the range are used up", d.Remote, size),
			Fix: []string{
				fmt.Sprintf("sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\" (now \"%d %d\")", s.Settings.PortLow, s.Settings.PortHigh),
			},
			Advice: "reuse connections (keep-alive, a pool) instead of one per request; let the server close first if the protocol allows; or connect from more source addresses. Never tcp_tw_recycle",
		}
		switch d.TwReuse {
		case sockets.TwReuseWouldHelp:
			f.Fix = append(f.Fix, fmt.Sprintf("sysctl -w net.ipv4.tcp_tw_reuse=1 (now %d)   # lets connect() take over TIME_WAIT ports to this destination", s.Settings.TwReuse))
		case sockets.TwReuseNoTimestamps:
			f.Fix = append(f.Fix, "sysctl -w net.ipv4.tcp_timestamps=1 (now 0)   # tcp_tw_reuse needs timestamps")
		}
		out = append(out, f)
	}
	if len(s.ServerTimeWait) > 0 && s.TimeWait.Server >= 1000 {
		top := s.ServerTimeWait[0]
		out = append(out, Finding{
			Stage:    stage.Ports,
			Severity: Info,
			Title:    fmt.Sprintf("%d TIME_WAIT sockets on this host's listening ports (most on port %d: %d)", s.TimeWait.Server, top.Port, top.Count),
			Evidence: []Evidence{{Source: sockDiag, Counter: "server-side TIME_WAIT", Value: uint64(s.TimeWait.Server)}},
			Cause:    "this host, as the server, closes connections first, so the TIME_WAIT state (60 s of kernel memory each) stays here",
			Advice:   "let clients close first (HTTP keep-alive with client-side close), or reuse connections; TIME_WAIT on the server costs memory and tw buckets, not ports",
		})
	}
	return out
}

// decorateListen names the listeners whose accept queue is full or that
// dropped, in the tcp-listen finding; a full queue with no counter moving
// yet is a near-drop of its own.
func decorateListen(in *input, fs []Finding) []Finding {
	var hot []sockets.Listener
	for _, l := range in.sockets.Listeners {
		if l.Full || l.Drops > 0 {
			hot = append(hot, l)
		}
	}
	if len(hot) == 0 {
		return fs
	}
	var ev []Evidence
	var names []string
	for _, l := range hot {
		ev = append(ev, Evidence{Source: sockDiag, Counter: fmt.Sprintf("listener %s accept queue %d/%d, drops since creation%s", l.Local, l.Queued, l.Backlog, owners(l.Processes)), Value: uint64(l.Drops)})
		names = append(names, l.Local.String()+owners(l.Processes))
	}
	for i := range fs {
		if fs[i].Stage == stage.TCPListen {
			fs[i].Evidence = append(fs[i].Evidence, ev...)
			fs[i].Title += ": " + strings.Join(names, ", ")
			return fs
		}
	}
	full := 0
	for _, l := range hot {
		if l.Full {
			full++
		}
	}
	if full == 0 {
		return fs
	}
	return append(fs, Finding{
		Stage:    stage.TCPListen,
		Severity: Warning,
		Title:    "accept queue full now: " + strings.Join(names, ", "),
		Evidence: ev,
		Cause:    "the listener's accept queue is at its backlog: the next connection attempts will be dropped",
		Fix:      []string{"raise the backlog the application passes to listen(), up to net.core.somaxconn (now " + orUnknown(in.sysctl("net.core.somaxconn")) + ")"},
		Advice:   "the application accepts too slowly: accept in a dedicated loop or thread",
	})
}

// decorateRcvbuf names the sockets that dropped or are near their buffer in
// the socket-rcvbuf findings.
func decorateRcvbuf(in *input, fs []Finding) []Finding {
	ps := in.sockets.Pressure
	if len(ps) == 0 {
		return fs
	}
	var udp, tcp []Evidence
	var udpNames, tcpNames []string
	for _, p := range ps {
		e := Evidence{Source: sockDiag, Counter: fmt.Sprintf("%s %s rcvbuf %d, queued %d, drops since creation%s", p.Protocol, p.Local, p.Rcvbuf, p.RmemAlloc, owners(p.Processes)), Value: uint64(p.Drops)}
		name := p.Local.String() + owners(p.Processes)
		if p.Protocol == "udp" {
			udp, udpNames = append(udp, e), append(udpNames, name)
		} else {
			tcp, tcpNames = append(tcp, e), append(tcpNames, name)
		}
	}
	found := false
	for i := range fs {
		if fs[i].Stage != stage.SocketRcvbuf {
			continue
		}
		switch {
		case strings.HasPrefix(fs[i].Title, "UDP receive") && len(udp) > 0:
			fs[i].Evidence = append(fs[i].Evidence, udp...)
			fs[i].Title += ": " + strings.Join(udpNames, ", ")
			found = true
		case strings.HasPrefix(fs[i].Title, "TCP receive") && len(tcp) > 0:
			fs[i].Evidence = append(fs[i].Evidence, tcp...)
			fs[i].Title += ": " + strings.Join(tcpNames, ", ")
			found = true
		}
	}
	if found {
		return fs
	}
	// No counter moved in the interval: sockets whose queue is near full
	// are a near-drop. Sockets with only old drops are history.
	var near []Evidence
	var names []string
	for _, p := range ps {
		if p.Fill >= sockets.DefaultNearFull {
			near = append(near, Evidence{Source: sockDiag, Counter: fmt.Sprintf("%s %s queued %d of rcvbuf %d%s", p.Protocol, p.Local, p.RmemAlloc, p.Rcvbuf, owners(p.Processes)), Value: uint64(p.RmemAlloc)})
			names = append(names, p.Local.String()+owners(p.Processes))
		}
	}
	if len(near) == 0 || in.once() {
		return fs
	}
	return append(fs, Finding{
		Stage:    stage.SocketRcvbuf,
		Severity: Warning,
		Title:    "receive queues near their buffer: " + strings.Join(names, ", "),
		Evidence: near,
		Cause:    "the application is not keeping up with these sockets: the next burst will be dropped",
		Fix:      []string{"setsockopt(SO_RCVBUF) larger in the application, up to net.core.rmem_max (now " + orUnknown(in.sysctl("net.core.rmem_max")) + ")"},
		Advice:   "read faster: batch with recvmmsg, more reader threads (SO_REUSEPORT)",
	})
}

// ruleSockets applies the socket evidence when it was read.
func ruleSockets(in *input, fs []Finding) []Finding {
	if in.sockets == nil {
		return fs
	}
	fs = decorateListen(in, fs)
	fs = decorateRcvbuf(in, fs)
	return append(fs, socketPorts(in)...)
}
