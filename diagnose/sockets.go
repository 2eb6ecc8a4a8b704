package diagnose

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// Socket evidence names who is responsible: which destination holds the
// ephemeral ports, which listener overflows, which socket drops. Counters
// say that it happens; sock_diag says where.

func owners(ps []sockets.Process) string {
	if len(ps) == 0 {
		return ""
	}
	return " (" + processes(ps) + ")"
}

// processes names the owners of a socket, "" when unknown.
func processes(ps []sockets.Process) string {
	var names []string
	for _, p := range ps {
		names = append(names, p.String())
	}
	return strings.Join(names, ", ")
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
				{Source: SourceSockDiag, Object: "tcp to " + d.Remote.String(), Field: "sockets", Value: uint64(d.Sockets)},
				{Source: SourceSockDiag, Object: "tcp to " + d.Remote.String(), Field: "TIME_WAIT", Value: uint64(d.TimeWait)},
			},
			Cause: fmt.Sprintf("this host opens short connections to %s and closes them first: each leaves its local port in TIME_WAIT for 60 s, and connect() fails with EADDRNOTAVAIL once the %d ports of the range are used up", d.Remote, size),
			Fix: []Fix{
				setting(Change{Kind: ChangeSysctl, Target: "net.ipv4.ip_local_port_range", Current: fmt.Sprintf("%d %d", s.Settings.PortLow, s.Settings.PortHigh), Proposed: "1024 65535"}, ""),
			},
			Advice: "reuse connections (keep-alive, a pool) instead of one per request; let the server close first if the protocol allows; or connect from more source addresses. Never tcp_tw_recycle",
		}
		switch d.TwReuse {
		case sockets.TwReuseWouldHelp:
			f.Fix = append(f.Fix, setting(Change{Kind: ChangeSysctl, Target: "net.ipv4.tcp_tw_reuse", Current: fmt.Sprint(s.Settings.TwReuse), Proposed: "1"}, "lets connect() take over TIME_WAIT ports to this destination"))
		case sockets.TwReuseNoTimestamps:
			f.Fix = append(f.Fix, setting(Change{Kind: ChangeSysctl, Target: "net.ipv4.tcp_timestamps", Current: "0", Proposed: "1"}, "tcp_tw_reuse needs timestamps"))
		}
		out = append(out, f)
	}
	if len(s.ServerTimeWait) > 0 && s.TimeWait.Server >= 1000 {
		top := s.ServerTimeWait[0]
		out = append(out, Finding{
			Stage:    stage.Ports,
			Severity: Info,
			Title:    fmt.Sprintf("%d TIME_WAIT sockets on this host's listening ports (most on port %d: %d)", s.TimeWait.Server, top.Port, top.Count),
			Evidence: []Evidence{{Source: SourceSockDiag, Object: "listening ports", Field: "TIME_WAIT", Value: uint64(s.TimeWait.Server)}},
			Cause:    "this host, as the server, closes connections first, so the TIME_WAIT state (60 s of kernel memory each) stays here",
			Advice:   "let clients close first (HTTP keep-alive with client-side close), or reuse connections; TIME_WAIT on the server costs memory and tw buckets, not ports",
		})
	}
	return out
}

// culprit is one socket named as responsible, with the drops it made in
// the interval when both socket views were read, or since it was created.
type culprit struct {
	name     string // "10.0.0.2:53 (named(812))"
	evidence Evidence
	full     bool // accept queue or receive buffer at its limit now
	// proto, local and process say which socket an application fix is
	// for; buf is its receive buffer (sk_rcvbuf) or listen backlog now.
	proto, local, process string
	buf                   uint64
}

// listenCulprits are the listeners that dropped in the interval (or ever,
// without a first view) or whose accept queue is full now.
func listenCulprits(in *input) []culprit {
	var out []culprit
	interval := map[uint64]uint32{}
	for _, d := range in.dropped {
		if d.Listener {
			interval[cookieOf(in, d)] = d.Drops
		}
	}
	for _, l := range in.sockets.Listeners {
		drops := l.Drops
		what := "drops since creation"
		if in.socketsBefore != nil {
			drops, what = interval[l.Cookie], "drops in the interval"
		}
		if !l.Full && drops == 0 {
			continue
		}
		name := l.Local.String() + owners(l.Processes)
		out = append(out, culprit{
			name:     name,
			full:     l.Full,
			proto:    "tcp",
			local:    l.Local.String(),
			process:  processes(l.Processes),
			buf:      uint64(l.Backlog),
			evidence: Evidence{Source: SourceSockDiag, Object: "listener " + name, Field: fmt.Sprintf("accept queue %d/%d, %s", l.Queued, l.Backlog, what), Delta: uint64(drops)},
		})
	}
	return out
}

// cookieOf finds the cookie of a dropped listener in the second view (the
// Dropped record does not carry it).
func cookieOf(in *input, d sockets.Dropped) uint64 {
	for _, l := range in.sockets.Listeners {
		if l.Local == d.Local && l.Drops == d.TotalDrops {
			return l.Cookie
		}
	}
	return 0
}

// decorateListen names the listeners whose accept queue is full or that
// dropped, in the tcp-listen finding; a full queue with no counter moving
// yet is a near-drop of its own.
func decorateListen(in *input, fs []Finding) []Finding {
	hot := listenCulprits(in)
	if len(hot) == 0 {
		return fs
	}
	var ev []Evidence
	var names []string
	full := 0
	for _, c := range hot {
		ev = append(ev, c.evidence)
		names = append(names, c.name)
		if c.full {
			full++
		}
	}
	var apps []Fix
	for _, c := range hot {
		apps = append(apps, in.backlogApp(c))
	}
	for i := range fs {
		if fs[i].Stage == stage.TCPListen {
			fs[i].Evidence = append(fs[i].Evidence, ev...)
			fs[i].Title += ": " + strings.Join(names, ", ")
			fs[i].Fix = replaceApp(fs[i].Fix, AppListenBacklog, apps)
			return fs
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
		Fix:      apps,
		Advice:   "the application accepts too slowly: accept in a dedicated loop or thread",
	})
}

// rcvbufCulprits are the sockets (not listeners) that dropped in the
// interval, or, without a first view, that have dropped or are near their
// buffer now.
func rcvbufCulprits(in *input) (udp, tcp []culprit) {
	add := func(proto string, c culprit) {
		if proto == "udp" {
			udp = append(udp, c)
		} else {
			tcp = append(tcp, c)
		}
	}
	// A socket that dropped in the interval and is still near full is in
	// both lists: name it once, with its drops in the interval.
	type key struct {
		proto         string
		local, remote netip.AddrPort
	}
	seen := map[key]bool{}
	if in.socketsBefore != nil {
		for _, d := range in.dropped {
			if d.Listener {
				continue
			}
			seen[key{d.Protocol, d.Local, d.Remote}] = true
			name := d.Local.String() + owners(d.Processes)
			add(d.Protocol, culprit{name: name, full: d.Rcvbuf > 0 && float64(d.RmemAlloc) >= sockets.DefaultNearFull*float64(d.Rcvbuf),
				proto: d.Protocol, local: d.Local.String(), process: processes(d.Processes), buf: uint64(d.Rcvbuf),
				evidence: Evidence{Source: SourceSockDiag, Object: d.Protocol + " " + name, Field: fmt.Sprintf("rcvbuf %d, queued %d, drops in the interval", d.Rcvbuf, d.RmemAlloc), Delta: uint64(d.Drops)}})
		}
	}
	for _, p := range in.sockets.Pressure {
		if in.socketsBefore != nil && p.Fill < sockets.DefaultNearFull {
			continue // already named above if it dropped in the interval
		}
		if seen[key{p.Protocol, p.Local, p.Remote}] {
			continue
		}
		name := p.Local.String() + owners(p.Processes)
		add(p.Protocol, culprit{name: name, full: p.Fill >= sockets.DefaultNearFull,
			proto: p.Protocol, local: p.Local.String(), process: processes(p.Processes), buf: uint64(p.Rcvbuf),
			evidence: Evidence{Source: SourceSockDiag, Object: p.Protocol + " " + name, Field: fmt.Sprintf("rcvbuf %d, queued %d, drops since creation", p.Rcvbuf, p.RmemAlloc), Value: uint64(p.Drops)}})
	}
	return udp, tcp
}

// hasEvidence reports whether f stands on a counter m selects.
func hasEvidence(f Finding, m match) bool {
	for _, e := range f.Evidence {
		if m(counters.Counter{Source: e.Source, Object: e.Object, Field: e.Field}) {
			return true
		}
	}
	return false
}

// decorateRcvbuf names the sockets that dropped or are near their buffer in
// the socket-rcvbuf findings; with no counter finding, sockets near full
// are a near-drop of their own.
func decorateRcvbuf(in *input, fs []Finding) []Finding {
	udp, tcp := rcvbufCulprits(in)
	if len(udp)+len(tcp) == 0 {
		return fs
	}
	found := false
	for i := range fs {
		if fs[i].Stage != stage.SocketRcvbuf {
			continue
		}
		var cs []culprit
		switch {
		case hasEvidence(fs[i], field(udpRcvbufFields...)):
			cs = udp
		case hasEvidence(fs[i], field(slices.Concat(tcpRcvqFields, tcpPruneFields, tcpZeroWindowFields)...)):
			cs = tcp
		}
		if len(cs) == 0 {
			continue
		}
		found = true
		var names []string
		var apps []Fix
		for _, c := range cs {
			fs[i].Evidence = append(fs[i].Evidence, c.evidence)
			if len(names) < 3 {
				names = append(names, c.name)
				switch {
				case c.proto != "tcp":
					apps = append(apps, in.rcvbufApp(c))
				case in.tcpRcvbufSet(c):
					// TCP autotunes its buffer unless the
					// application fixed it: then the fixed size
					// is the fault.
					apps = append(apps, in.tcpRcvbufApp(c))
				}
			}
		}
		fs[i].Title += ": " + strings.Join(names, ", ")
		fs[i].Fix = replaceApp(fs[i].Fix, AppRcvbuf, apps)
	}
	if found || in.once() {
		return fs
	}
	var ev []Evidence
	var names []string
	var apps []Fix
	onlyTCP := true
	for _, c := range append(udp, tcp...) {
		if c.full {
			ev = append(ev, c.evidence)
			names = append(names, c.name)
			switch {
			case c.proto != "tcp":
				onlyTCP = false
				apps = append(apps, in.rcvbufApp(c))
			case in.tcpRcvbufSet(c):
				apps = append(apps, in.tcpRcvbufApp(c))
			}
		}
	}
	if len(apps) == 0 {
		apps = append(apps, advice("let TCP autotune the receive buffer (do not set SO_RCVBUF), up to the max of net.ipv4.tcp_rmem"))
	}
	if len(ev) == 0 {
		return fs
	}
	f := Finding{
		Stage:    stage.SocketRcvbuf,
		Severity: Warning,
		Title:    "receive queues near their buffer: " + strings.Join(names, ", "),
		Evidence: ev,
		Cause:    "the application is not keeping up with these sockets: the next burst will be dropped",
		Fix:      apps,
		Advice:   "read faster: batch with recvmmsg, more reader threads (SO_REUSEPORT)",
	}
	if onlyTCP {
		f.Cause = "the application is not reading these connections: their windows close and the senders stall, and segments that arrive out of order beyond the buffer are dropped"
		f.Advice = "read more often or in larger reads; a reader that stops for good should close the connection"
	}
	return append(fs, f)
}

// ruleSockets applies the socket evidence when it was read.
func ruleSockets(in *input, fs []Finding) []Finding {
	if in.sockets == nil {
		return fs
	}
	if in.socketsBefore != nil {
		in.dropped = sockets.NewDrops(in.socketsBefore, in.sockets)
	}
	fs = decorateListen(in, fs)
	fs = decorateRcvbuf(in, fs)
	return append(fs, socketPorts(in)...)
}

// rcvbufApp proposes a larger SO_RCVBUF for the socket c names (for the
// application's sockets of its protocol when it names none): rmemTarget,
// which the rmem_max fix of the same finding allows.
func (in *input) rcvbufApp(c culprit) Fix {
	return appFix(AppChange{Param: AppRcvbuf, Proto: c.proto, Socket: c.local, Process: c.process, Value: rmemTarget, Current: c.buf, Limit: "net.core.rmem_max"},
		"setsockopt before bind; the kernel caps it at net.core.rmem_max and reports twice the value asked")
}

// tcpRcvbufSet reports whether the TCP socket c names has a receive buffer
// its application set: one smaller than the default of net.ipv4.tcp_rmem.
// Autotuning starts a socket at that default and only grows it, so a
// smaller buffer is an SO_RCVBUF (which the kernel doubles, and which turns
// autotuning off for the socket).
func (in *input) tcpRcvbufSet(c culprit) bool {
	v := in.sysctlFields("net.ipv4.tcp_rmem")
	return len(v) == 3 && c.buf > 0 && int64(c.buf) < v[1]
}

// tcpRcvbufApp proposes a larger SO_RCVBUF for a TCP socket whose
// application fixed a small one; dropping the setsockopt is as good.
func (in *input) tcpRcvbufApp(c culprit) Fix {
	return appFix(AppChange{Param: AppRcvbuf, Proto: c.proto, Socket: c.local, Process: c.process, Value: rmemTarget, Current: c.buf, Limit: "net.core.rmem_max"},
		"the application set this buffer below net.ipv4.tcp_rmem's default, which also stops autotuning: remove the setsockopt, or set at least this before listen() or connect()")
}

// backlogApp proposes a listen() backlog for the listener c names (for the
// application's listeners when it names none): the somaxconn the same
// finding proposes, since the kernel caps the backlog there.
func (in *input) backlogApp(c culprit) Fix {
	want, _ := strconv.ParseUint(in.raise("net.core.somaxconn", 4096).Change.Proposed, 10, 64)
	return appFix(AppChange{Param: AppListenBacklog, Proto: "tcp", Socket: c.local, Process: c.process, Value: want, Current: c.buf, Limit: "net.core.somaxconn"},
		"the accept queue holds min(backlog, net.core.somaxconn) connections")
}

// replaceApp replaces the generic application fix for param in fixes (one
// that names no socket) with the fixes for the sockets found, or adds them.
func replaceApp(fixes []Fix, param AppParam, with []Fix) []Fix {
	if len(with) == 0 {
		return fixes
	}
	var out []Fix
	done := false
	for _, f := range fixes {
		if f.Kind == FixApp && f.App.Param == param && f.App.Socket == "" {
			if !done {
				out = append(out, with...)
				done = true
			}
			continue
		}
		out = append(out, f)
	}
	if !done {
		out = append(out, with...)
	}
	return out
}
