package diagnose

import (
	"fmt"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// rmemTarget is the receive buffer limit proposed for sockets that overflow:
// 25 MiB holds about 200 ms of a 1 Gbit/s stream.
const rmemTarget = 26214400

// The counters of the two receive-buffer findings, UDP's and TCP's:
// decorateRcvbuf tells the findings apart by them.
var (
	udpRcvbufFields = []string{"Udp:RcvbufErrors", "Udp6:RcvbufErrors", "UdpLite:RcvbufErrors", "UdpLite6:RcvbufErrors"}
	// The segments dropped are counted where they are dropped: the
	// backlog, the receive queue, the out-of-order queue (TCPOFODrop is
	// a memory drop too: tcp_data_queue_ofo counts it only when the
	// buffer stays full after pruning), a closed window. OfoPruned and
	// RcvPruned count prunes, not segments: RcvPruned is the prune that
	// freed too little, and the segment it leaves to its caller is one
	// of TCPRcvQDrop or TCPOFODrop already, so they are evidence (events).
	tcpRcvqFields = []string{"TcpExt:TCPBacklogDrop", "TcpExt:TCPRcvQDrop", "TcpExt:TCPOFODrop", "TcpExt:TCPZeroWindowDrop", "TcpExt:RcvPruned", "TcpExt:OfoPruned"}
	// Pruning and collapsing are the near-drops before RcvPruned: the
	// same queue over the same buffer, so the same finding.
	tcpPruneFields = []string{"TcpExt:PruneCalled", "TcpExt:TCPRcvCollapsed"}
	// A window closed to zero is TCP flow control at work: a reader
	// that fell behind, before anything is pruned or dropped.
	tcpZeroWindowFields = []string{"TcpExt:TCPToZeroWindowAdv"}
)

// ruleSocketRcvbuf: sockets whose receive queue was full. UDP and TCP
// counters describe different packets and add up; per-socket drop counts
// repeat them and name the sockets, so they are evidence only.
func ruleSocketRcvbuf(in *input) []Finding {
	udp := in.moved(field(udpRcvbufFields...))
	mem := in.moved(field("Udp:MemErrors", "Udp6:MemErrors"))
	tcp, ofo := byUnit(in.moved(field(tcpRcvqFields...)))
	perSock := in.moved(func(c counters.Counter) bool {
		return c.Stage == stage.SocketRcvbuf && c.Field == "drops" && c.Object != ""
	})
	var out []Finding
	if d := sum(udp); d > 0 {
		f := Finding{
			Stage:    stage.SocketRcvbuf,
			Severity: in.lossSeverity(d),
			Title:    fmt.Sprintf("UDP receive buffers full: %d datagrams dropped", d),
			Drops:    d,
			Evidence: evidence(udp),
			Cause:    "datagrams arrived faster than the application read them and the socket's receive buffer (SO_RCVBUF) was full",
			Fix: []Fix{
				in.raise("net.core.rmem_max", rmemTarget).withNote("the ceiling for SO_RCVBUF"),
				in.raise("net.core.rmem_default", 1048576).withNote("for sockets that do not set SO_RCVBUF"),
				in.rcvbufApp(culprit{proto: "udp"}),
			},
			Advice: "a bigger buffer only absorbs bursts; if the reader is too slow on average, read faster: recvmmsg batches, more reader threads on SO_REUSEPORT sockets, less work per datagram on the reading thread",
		}
		// sock_diag names the sockets with their processes when it was
		// read; /proc/net/udp's inode is the fallback.
		if in.sockets == nil {
			f.Evidence = append(f.Evidence, evidence(perSock)...)
			if names := socketNames(perSock); names != "" {
				f.Title += " (" + names + ")"
			}
		}
		out = append(out, f)
	}
	if d := sum(mem); d > 0 {
		out = append(out, Finding{
			Stage:    stage.SocketRcvbuf,
			Severity: in.lossSeverity(d),
			Title:    fmt.Sprintf("UDP memory limit reached: %d datagrams dropped", d),
			Drops:    d,
			Evidence: evidence(mem),
			Cause:    "all UDP sockets together reached net.ipv4.udp_mem, the global limit in pages",
			Fix:      []Fix{in.doubleTriple("net.ipv4.udp_mem")},
			Advice:   "find the sockets holding memory: netdrop sockets (receive queues near their buffer)",
		})
	}
	prune := in.moved(field(tcpPruneFields...))
	zero := in.moved(field(tcpZeroWindowFields...))
	if in.once() && sum(tcp) == 0 {
		prune, ofo, zero = nil, nil, nil // history of near-drops says nothing now
	}
	if d := sum(tcp); d > 0 || len(ofo)+len(prune)+len(zero) > 0 {
		f := Finding{
			Stage:    stage.SocketRcvbuf,
			Severity: max(in.lossSeverity(d), in.eventSeverity(maxValue(append(append(ofo, prune...), zero...)))),
			Title:    fmt.Sprintf("TCP receive queues overran: %d segments dropped", d),
			Drops:    d,
			Evidence: evidence(tcp, ofo, prune, zero),
			Cause:    "segments arrived while the socket's receive queue or backlog was over its buffer (the application is not reading, or the buffer is too small for the bandwidth-delay product)",
			Fix:      append(in.tcpRmemFix(), in.raise("net.core.rmem_max", rmemTarget)),
			Advice:   "TCP retransmits what it drops here, so the cost is latency and throughput: make the reader keep up",
		}
		switch {
		case d > 0 && sum(in.moved(field("TcpExt:TCPOFODrop"))) >= d/2:
			f.Title = fmt.Sprintf("TCP out-of-order queues overran their buffer: %d segments dropped", d)
			f.Cause = "segments arrived out of order (lost or reordered on the path) and waited in the out-of-order queue, which held more of the receive buffer than the window promised (a small segment costs the buffer far more than the bytes it carries): the kernel pruned the queue and dropped what still did not fit"
			f.Advice = "TCP retransmits what it drops here, so the cost is latency and throughput; a buffer the application fixed with SO_RCVBUF cannot grow, let autotuning size it; and find the loss or reordering on the path (netdrop on the sender and the hops between)"
		case d == 0 && len(prune)+len(ofo) == 0:
			f.Title = fmt.Sprintf("TCP receive windows closed to zero %d time%s: readers fell behind", sum(zero), plural(sum(zero)))
			f.Cause = "receivers advertised a zero window because their application did not read: TCP flow control paused the senders (no data was lost)"
			f.Advice = "the application reads more slowly than data arrives: read faster, or let autotuning grow the buffer (do not set SO_RCVBUF, which turns autotuning off)"
		case d == 0:
			f.Title = "TCP receive queues pruned to fit their buffer"
			f.Cause = "sockets went over their receive buffer and the kernel collapsed their queues to make room: a near-drop, and CPU spent copying"
			f.Advice = "the reader falls behind the sender: read faster, or let autotuning grow the buffer (do not set SO_RCVBUF, which turns autotuning off)"
		}
		out = append(out, f)
	}
	return out
}

// tcpRmemMax is the autotuning ceiling proposed for TCP receive buffers
// that overrun: 32 MiB.
const tcpRmemMax = 33554432

// tcpRmemFix raises the max of net.ipv4.tcp_rmem to tcpRmemMax, keeping its
// min and default; nothing when the max is already there.
func (in *input) tcpRmemFix() []Fix {
	v := in.sysctlFields("net.ipv4.tcp_rmem")
	proposed := fmt.Sprintf("4096 131072 %d", tcpRmemMax)
	if len(v) == 3 {
		if v[2] >= tcpRmemMax {
			return nil
		}
		proposed = fmt.Sprintf("%d %d %d", v[0], v[1], tcpRmemMax)
	}
	return []Fix{in.set("net.ipv4.tcp_rmem", proposed).withNote("min, default, max: autotuning grows a buffer up to max")}
}

// socketNames lists sockets named by per-socket counters.
func socketNames(cs []counters.Counter) string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Object)
		if len(names) == 3 {
			break
		}
	}
	return strings.Join(names, "; ")
}

// ruleTCPMemory: TCP as a whole is short of memory (near-drop, then loss).
func ruleTCPMemory(in *input) []Finding {
	var out []Finding
	pressure := in.moved(field("TcpExt:TCPMemoryPressures", "TcpExt:TCPAbortOnMemory"))
	mem, ok := in.gauge(field("TCP:mem"))
	limits := in.sysctlFields("net.ipv4.tcp_mem")
	high := ok && len(limits) == 3 && limits[1] > 0 && int64(mem) >= limits[1]
	if len(pressure) == 0 && !high {
		return out
	}
	f := Finding{
		Stage:    stage.SocketRcvbuf,
		Severity: in.eventSeverity(sum(pressure)),
		Title:    "TCP memory pressure",
		Evidence: evidence(pressure),
		Cause:    "TCP sockets together use more than the pressure threshold of net.ipv4.tcp_mem (pages); the kernel prunes receive queues and shrinks buffers, and drops next",
		Fix:      []Fix{in.doubleTriple("net.ipv4.tcp_mem")},
		Advice:   "find the sockets with large queues: netdrop sockets",
	}
	if high {
		// A level over its limit is sustained by nature.
		f.Title = fmt.Sprintf("TCP memory above pressure: %d pages of %d", mem, limits[1])
		f.Severity = Warning
	}
	if in.once() {
		f.Severity = Info
	}
	return append(out, f)
}

// ruleTCPListen: listeners whose SYN or accept queue overflowed.
// ListenDrops counts every drop on a listener, overflows included, so it is
// the loss when it moved; the others are evidence of which queue.
func ruleTCPListen(in *input) []Finding {
	drops := in.moved(field("TcpExt:ListenDrops"))
	over := in.moved(field("TcpExt:ListenOverflows"))
	synq := in.moved(field("TcpExt:TCPReqQFullDrop", "TcpExt:TCPReqQFullDoCookies", "TcpExt:SyncookiesSent", "TcpExt:SyncookiesFailed"))
	in.moved(field("TcpExt:SyncookiesRecv"))
	d := sum(drops)
	if d == 0 {
		d = sum(over)
	}
	if d == 0 && len(synq) == 0 {
		return nil
	}
	f := Finding{
		Stage:    stage.TCPListen,
		Severity: in.lossSeverity(d),
		Drops:    d,
		Evidence: evidence(drops, over, synq),
	}
	somaxconn := in.sysctl("net.core.somaxconn")
	if sum(over) > 0 {
		f.Title = fmt.Sprintf("TCP accept queue full: %d connection attempts dropped", d)
		f.Cause = "a listener's accept queue (its listen() backlog, capped by net.core.somaxconn) was full: the application does not call accept() fast enough, or its backlog is too small"
		f.Fix = []Fix{
			in.raise("net.core.somaxconn", 4096).withNote("caps every listen() backlog"),
			in.backlogApp(culprit{}),
			inspect("netdrop sockets --state listen", "which listener, its queue and backlog"),
		}
		f.Advice = "a full accept queue means the application accepts too slowly: accept in a dedicated loop or thread, or spread with SO_REUSEPORT"
		_ = somaxconn
	} else {
		f.Title = "TCP SYN queue full"
		f.Cause = "half-open connections filled the SYN queue (a SYN flood, or a listener whose clients do not complete the handshake)"
		f.Fix = []Fix{
			in.raise("net.ipv4.tcp_max_syn_backlog", 8192),
			in.set("net.ipv4.tcp_syncookies", "1"),
		}
		if d == 0 {
			f.Severity = in.eventSeverity(sum(synq))
			f.Title = "TCP SYN queue full: answered with syncookies"
		}
	}
	if in.once() && f.Severity > Warning {
		f.Severity = Warning
	}
	return []Finding{f}
}

// ruleTCP: TCP segments discarded as invalid or by policy.
func ruleTCP(in *input) []Finding {
	cs := in.moved(field("Tcp:InErrs", "Tcp:InCsumErrors", "TcpExt:PAWSEstab", "TcpExt:PAWSEstabRejected", "TcpExt:TCPMinTTLDrop",
		"TcpExt:TCPDeferAcceptDrop", "TcpExt:LockDroppedIcmps", "TcpExt:PFMemallocDrop"))
	if len(cs) == 0 {
		return nil
	}
	// Tcp:InErrs includes InCsumErrors; count the larger of the two and the
	// rest.
	var d, inerr, csum uint64
	for _, c := range cs {
		switch c.Field {
		case "Tcp:InErrs":
			inerr = c.Value
		case "Tcp:InCsumErrors":
			csum = c.Value
		default:
			d += c.Value
		}
	}
	if inerr > csum {
		d += inerr
	} else {
		d += csum
	}
	sev := atMost(in.lossSeverity(d), Warning)
	if in.once() {
		sev = Info
	}
	return []Finding{{
		Stage:    stage.TCP,
		Severity: sev,
		Title:    fmt.Sprintf("TCP discarded %d segments", d),
		Drops:    d,
		Evidence: evidence(cs),
		Cause:    "segments were invalid (bad checksum, out of window, old timestamps) or dropped by policy (min TTL, out-of-order queue limits)",
		Fix:      []Fix{inspect("netdrop trace --proto tcp", "the drop reason says which check failed")},
		// A receiver cannot make invalid segments valid; the sender or
		// the path has to change.
		NotAutomatic: "invalid segments come from the sender or the path (corruption, a middlebox, an attack): no setting on this host repairs them",
	}}
}

// ruleRetrans: retransmissions are loss beyond this host (or a peer that
// does not answer). Information, with the checks that remain.
func ruleRetrans(in *input) []Finding {
	cs := in.moved(field("Tcp:RetransSegs", "TcpExt:TCPSynRetrans", "TcpExt:TCPTimeouts"))
	if len(cs) == 0 || in.once() {
		return nil
	}
	var syn uint64
	for _, c := range cs {
		if c.Field == "TcpExt:TCPSynRetrans" {
			syn = c.Value
		}
	}
	f := Finding{
		Stage:    stage.TCP,
		Severity: Info,
		Title:    "TCP retransmissions: loss beyond this host",
		Evidence: evidence(cs),
		Cause:    "segments were sent again because no acknowledgement came: loss on the network or at the peer, not on this host's receive path",
		Fix:      []Fix{advice("check the drops on the peer (netdrop there) and on the path between")},
	}
	if syn > 0 {
		f.Title = fmt.Sprintf("TCP SYN retransmissions (%d): peers do not answer connection attempts", syn)
		f.Fix = []Fix{
			advice("is the peer listening? (netdrop sockets --state listen on the peer)"),
			advice("does a firewall drop the SYN or SYN/ACK? (netdrop trace on both hosts)"),
			advice(fmt.Sprintf("on the peer: tcp_max_syn_backlog (here %s) and tcp_syncookies (here %s)", orUnknown(in.sysctl("net.ipv4.tcp_max_syn_backlog")), orUnknown(in.sysctl("net.ipv4.tcp_syncookies")))),
		}
	}
	return []Finding{f}
}

// portRange returns the size of the ephemeral port range.
func (in *input) portRange() (lo, hi int64, ok bool) {
	r := in.sysctlFields("net.ipv4.ip_local_port_range")
	if len(r) != 2 || r[1] < r[0] {
		return 0, 0, false
	}
	return r[0], r[1], true
}

// rulePorts: TIME_WAIT buckets overflowing, or TIME_WAIT sockets close to the
// size of the ephemeral range (each destination has the whole range, so this
// total is an upper bound of one destination's use; netdrop sockets gives
// the per-destination share).
func rulePorts(in *input) []Finding {
	var out []Finding
	over := in.moved(field("TcpExt:TCPTimeWaitOverflow"))
	if d := sum(over); d > 0 {
		// Sockets closed without TIME_WAIT: events, no packet lost.
		out = append(out, Finding{
			Stage:    stage.Ports,
			Severity: in.eventSeverity(d),
			Title:    fmt.Sprintf("TIME_WAIT bucket table full: %d sockets closed without TIME_WAIT", d),
			Evidence: evidence(over),
			Cause:    "more connections closed than net.ipv4.tcp_max_tw_buckets allows in TIME_WAIT",
			Fix:      []Fix{in.raise("net.ipv4.tcp_max_tw_buckets", 262144)},
			Advice:   "reuse connections (keep-alive, pooling) instead of opening one per request",
		})
	}
	tw, ok := in.gauge(field("TCP:tw"))
	lo, hi, rok := in.portRange()
	// With the socket view, per-destination shares replace this bound.
	if ok && rok && tw > 0 && in.sockets == nil {
		size := uint64(hi - lo + 1)
		share := float64(tw) / float64(size)
		if share >= 0.5 {
			sev := Warning
			if share >= 0.9 {
				sev = Critical
			}
			twc := in.gauges(field("TCP:tw"))
			reuse := in.sysctl("net.ipv4.tcp_tw_reuse")
			fix := []Fix{
				in.set("net.ipv4.ip_local_port_range", "1024 65535").withNote(fmt.Sprintf("%d ports", size)),
			}
			if reuse != "1" {
				fix = append(fix, in.set("net.ipv4.tcp_tw_reuse", "1").withNote("lets outgoing connections reuse TIME_WAIT ports"))
			}
			fix = append(fix, inspect("netdrop sockets", "which destinations hold the ports"))
			out = append(out, Finding{
				Stage:    stage.Ports,
				Severity: sev,
				Title:    fmt.Sprintf("%d sockets in TIME_WAIT for %d ephemeral ports (%.0f%%)", tw, size, share*100),
				Evidence: []Evidence{gaugeEvidence(twc[0], 0)},
				Cause:    "short connections leave their port in TIME_WAIT for 60 s on the side that closes first; toward one destination, new connect() calls fail with EADDRNOTAVAIL once the range is used up",
				Fix:      fix,
				Advice:   "the side that closes first holds TIME_WAIT: let the client close, and reuse connections (keep-alive, pooling) rather than one connection per request; never tcp_tw_recycle",
			})
		}
	}
	return out
}

// doubleTriple proposes doubling each of the three page limits of tcp_mem or
// udp_mem (min, pressure, max): the kernel sizes them from memory at boot,
// and doubling keeps their proportions.
func (in *input) doubleTriple(name string) Fix {
	v := in.sysctlFields(name)
	if len(v) != 3 {
		return advice(fmt.Sprintf("raise all three page limits of %s (min, pressure, max)", name))
	}
	return setting(Change{Kind: ChangeSysctl, Target: name, Current: fmt.Sprintf("%d %d %d", v[0], v[1], v[2]), Proposed: fmt.Sprintf("%d %d %d", 2*v[0], 2*v[1], 2*v[2])}, "pages")
}
