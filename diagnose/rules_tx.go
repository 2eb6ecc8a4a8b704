package diagnose

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// qdiscObject splits a qdisc Object ("eth0 fq_codel 0:") into interface and
// kind.
func qdiscObject(obj string) (ifname, kind string) {
	f := strings.Fields(obj)
	if len(f) > 0 {
		ifname = f[0]
	}
	if len(f) > 1 {
		kind = f[1]
	}
	return
}

// ruleQdisc: traffic-control queues that dropped. A classful root counts its
// children's drops too, so per interface the largest qdisc count is taken,
// not the sum.
func ruleQdisc(in *input) []Finding {
	// The ingress and clsact qdiscs' drops are filter verdicts on the
	// receive side (stage tc-ingress, ruleTCIngress): not a transmit queue.
	egress := func(m match) match {
		return func(c counters.Counter) bool { return c.Stage != stage.TCIngress && m(c) }
	}
	drops := in.moved(egress(from(counters.NetlinkQdisc, "drops")))
	in.moved(egress(from(counters.NetlinkQdisc)))
	byIf := map[string][]counters.Counter{}
	for _, c := range drops {
		ifn, _ := qdiscObject(c.Object)
		byIf[ifn] = append(byIf[ifn], c)
	}
	var out []Finding
	for _, ifn := range objects(byIf) {
		cs := byIf[ifn]
		top := cs[0]
		for _, c := range cs {
			// The root's count includes its children's and classes':
			// on a tie the root is the one to name.
			if c.Value > top.Value || c.Value == top.Value && c.Stage == stage.Qdisc && top.Stage != stage.Qdisc {
				top = c
			}
		}
		_, kind := qdiscObject(top.Object)
		f := Finding{
			Stage:    stage.Qdisc,
			Severity: in.lossSeverity(top.Value),
			Title:    fmt.Sprintf("qdisc %s on %s dropped %d packets", kind, ifn, top.Value),
			Drops:    top.Value,
			Evidence: evidence(cs),
			Cause:    "the interface's transmit queue was full: the application sends faster than the link (or a shaper) drains",
		}
		switch kind {
		case "tbf", "htb", "cake", "hfsc", "cbq", "police":
			f.Cause = "a shaper (" + kind + ") limits the rate and its queue overflowed: traffic above the configured rate is dropped"
			f.Fix = []Fix{
				inspect(shellJoin("tc", "-s", "qdisc", "show", "dev", ifn), "the configured rate and limit"),
				advice(fmt.Sprintf("a larger queue absorbs bursts: raise the limit (tc qdisc change dev %s root %s … limit BYTES), or the rate if it is too low", ifn, kind)),
			}
			if kind == "htb" {
				// htb has no queue of its own: its leaf qdiscs do.
				f.Fix[1] = advice(fmt.Sprintf("raise the rate or ceil of the class that drops (tc class change dev %s classid CLASS htb rate … ceil …), or the limit of its leaf qdisc", ifn))
			}
			f.NotAutomatic = "a shaper's rate and queue are a policy someone configured: netdrop does not change them"
			// Computed only for a root tbf: "root" is in the command.
			if fix, ok := in.tbfLimitFix(ifn, top.Object); ok && kind == "tbf" && top.Stage == stage.Qdisc {
				f.Fix[1] = fix
			}
		case "pfifo_fast", "pfifo", "bfifo", "noqueue", "mq":
			txq := 0
			if n, ok := in.nic(ifn); ok {
				txq = n.TxQueueLen
			}
			c := Change{Kind: ChangeTxQueueLen, Target: ifn, Proposed: "10000"}
			if txq > 0 {
				c.Current = fmt.Sprint(txq)
			}
			f.Fix = []Fix{setting(c, "")}
			if kind == "mq" {
				f.Fix = append(f.Fix, mqChildFixes(ifn, cs)...)
				break
			}
			f.Fix = append(f.Fix, manual(shellJoin("tc", "qdisc", "replace", "dev", ifn, "root", "fq_codel"), kind, "fair queueing keeps one flow from filling the queue",
				"replacing the root qdisc drops the packets queued in it and its configuration; netdrop leaves the choice of queueing discipline to you"))
		default:
			f.Fix = []Fix{
				inspect(shellJoin("tc", "-s", "qdisc", "show", "dev", ifn), "the limit and the backlog"),
				manual(shellJoin("tc", "qdisc", "replace", "dev", ifn, "root", kind, "limit", "10240"), "", "if the limit is the problem",
					"replacing the root qdisc resets its other options to their defaults; netdrop leaves qdisc settings to you"),
			}
		}
		// fq_codel's statistics may replace the cause; the htb class
		// is added to whichever cause stands.
		in.explainFqCodel(&f, ifn, kind)
		in.explainHTB(&f, ifn)
		f.Advice = "pace the sender (SO_MAX_PACING_RATE, fq) rather than relying on drops to slow it"
		out = append(out, f)
	}
	return out
}

// mqChildFixes proposes fair queueing for a multiqueue interface whose mq
// root dropped. mq queues nothing itself: it holds one child qdisc per
// transmit queue (parent :1, :2, …) and counts their drops, so the change
// belongs on the children that dropped — replacing the root with one
// fq_codel would put every CPU's transmissions behind a single queue and
// lock. Without a child's count, the children are listed to pick from.
func mqChildFixes(ifn string, cs []counters.Counter) []Fix {
	why := "replacing a queue's qdisc drops the packets queued in it; netdrop leaves the choice of queueing discipline to you"
	var kids []counters.Counter
	for _, c := range cs {
		if f := strings.Fields(c.Object); len(f) == 5 && f[3] == "parent" && f[1] != "mq" {
			kids = append(kids, c)
		}
	}
	slices.SortStableFunc(kids, func(a, b counters.Counter) int { return cmp.Compare(b.Value, a.Value) })
	var out []Fix
	for _, c := range kids[:min(len(kids), 4)] {
		f := strings.Fields(c.Object)
		if f[1] == "fq_codel" {
			continue // explainFqCodel speaks for these
		}
		out = append(out, manual(shellJoin("tc", "qdisc", "replace", "dev", ifn, "parent", f[4], "fq_codel"), f[1],
			fmt.Sprintf("fair queueing on transmit queue %s, which dropped %d; mq stays the root", f[4], c.Value), why))
	}
	if len(kids) == 0 {
		out = append(out, inspect(shellJoin("tc", "-s", "qdisc", "show", "dev", ifn), "mq's children, one per transmit queue (parent :N), with their drops"),
			advice(fmt.Sprintf("replace the child that drops, not the mq root: tc qdisc replace dev %s parent :N fq_codel", ifn)))
	}
	return out
}

// qdiscField selects the counters named field of the qdiscs and classes
// of interface ifn.
func qdiscField(ifn string, fields ...string) match {
	return func(c counters.Counter) bool {
		return c.Source == counters.NetlinkQdisc && strings.HasPrefix(c.Object, ifn+" ") && slices.Contains(fields, c.Field)
	}
}

// qdiscGauge is the gauge field of the qdisc or class obj (0 when unread).
func (in *input) qdiscGauge(obj, field string) uint64 {
	v, _ := in.gauge(func(c counters.Counter) bool {
		return c.Source == counters.NetlinkQdisc && c.Object == obj && c.Field == field
	})
	return v
}

// explainHTB names the htb class on ifn that dropped most, with its rate
// and ceil: a root htb counts every class's drops, and the class says
// which traffic class overflowed.
func (in *input) explainHTB(f *Finding, ifn string) {
	var cls counters.Counter
	for _, c := range in.moved(qdiscField(ifn, "drops")) {
		if strings.Contains(c.Object, " htb class ") && c.Value > cls.Value {
			cls = c
		}
	}
	if cls.Value == 0 {
		return
	}
	id := cls.Object[strings.LastIndex(cls.Object, " ")+1:]
	f.Cause += fmt.Sprintf("; htb class %s (rate %d bytes/s, ceil %d bytes/s) dropped %d of them",
		id, in.qdiscGauge(cls.Object, "rate"), in.qdiscGauge(cls.Object, "ceil"), cls.Value)
	// The advice to raise the class's rate names the class that dropped.
	for i := range f.Fix {
		if f.Fix[i].Kind == FixAdvice {
			f.Fix[i].Text = strings.Replace(f.Fix[i].Text, "the class that drops (tc class change dev "+ifn+" classid CLASS ",
				fmt.Sprintf("class %s (tc class change dev %s classid %s ", id, ifn, id), 1)
		}
	}
	f.Fix = append(f.Fix, inspect(shellJoin("tc", "-s", "class", "show", "dev", ifn), "each class's rate, ceil, drops and overlimits"))
}

// explainFqCodel tells, from an fq_codel's own statistics on ifn, a queue
// that hit its limit (drop_overlimit, drop_overmemory: a larger limit
// helps) from CoDel dropping packets that waited longer than its target
// (its congestion signal: a larger queue only adds delay). kind is the
// kind of the qdisc whose drops the finding counts.
func (in *input) explainFqCodel(f *Finding, ifn, kind string) {
	fq := in.moved(func(c counters.Counter) bool {
		return qdiscField(ifn, "drops")(c) && strings.Contains(c.Object, " fq_codel ")
	})
	if len(fq) == 0 {
		return
	}
	over := in.moved(qdiscField(ifn, "drop_overlimit", "drop_overmemory"))
	if len(over) == 0 {
		f.Cause = fmt.Sprintf("CoDel in fq_codel on %s dropped packets that waited in the queue longer than its target (drop_overlimit did not move: the queue was not full); "+
			"the sender outpaces the link and CoDel's drops are its signal to slow down", ifn)
		if kind == "fq_codel" {
			f.Fix = []Fix{inspect(shellJoin("tc", "-s", "qdisc", "show", "dev", ifn), "fq_codel's target, interval and drop counts")}
			f.NotAutomatic = "CoDel drops by design to keep the queue's delay low: a longer queue would only add delay"
		}
		return
	}
	top := over[0]
	for _, c := range over {
		if c.Value > top.Value {
			top = c
		}
	}
	sel, ok := qdiscSelector(top.Object, in.stageOf(top.Object))
	limitField, option := "packet_limit", "limit"
	if top.Field == "drop_overmemory" {
		limitField, option = "memory_limit", "memory_limit"
	}
	limit := in.qdiscGauge(top.Object, limitField)
	unit := "packets"
	if option == "memory_limit" {
		unit = "bytes"
	}
	f.Cause = fmt.Sprintf("fq_codel (%s) on %s reached its %s of %d %s and dropped %d packets (%s): a burst larger than its queue", strings.Join(strings.Fields(top.Object)[1:], " "), ifn, option, limit, unit, top.Value, top.Field)
	if !ok || limit == 0 {
		return
	}
	args := append(append([]string{"tc", "qdisc", "change", "dev", ifn}, sel...), "fq_codel", option, fmt.Sprint(2*limit))
	fix := manual(shellJoin(args...), fmt.Sprintf("%s %d", option, limit), "a longer queue absorbs the burst; CoDel still keeps the delay low",
		"a qdisc's limits are configuration someone chose: netdrop does not change them")
	if kind == "fq_codel" {
		f.Fix = []Fix{inspect(shellJoin("tc", "-s", "qdisc", "show", "dev", ifn), "fq_codel's limit and drop_overlimit"), fix}
		f.NotAutomatic = fix.NotAutomatic
		return
	}
	f.Fix = append(f.Fix, fix)
}

// stageOf is the stage of a qdisc's drops counter: qdisc for a root.
func (in *input) stageOf(obj string) stage.ID {
	for _, c := range in.delta.Counters {
		if c.Source == counters.NetlinkQdisc && c.Object == obj && c.Field == "drops" {
			return c.Stage
		}
	}
	return ""
}

// qdiscSelector is how tc names the qdisc obj on change: "root" for a
// root qdisc, "parent P" for a per-queue child of mq ("eth0 fq_codel 0:
// parent :3"), "handle H" for another child.
func qdiscSelector(obj string, st stage.ID) ([]string, bool) {
	f := strings.Fields(obj)
	switch {
	case st == stage.Qdisc:
		return []string{"root"}, true
	case len(f) == 5 && f[3] == "parent":
		return []string{"parent", f[4]}, true
	case len(f) == 3 && f[2] != "0:":
		return []string{"handle", f[2]}, true
	}
	return nil, false
}

// tbfLimitFix computes a tbf's larger queue from its settings as read
// (rate, burst, limit): twice the limit, and at least 100 ms at its rate,
// with rate and burst restated because tc requires them on change. tc reads
// "bps" as bytes per second.
func (in *input) tbfLimitFix(ifn, obj string) (Fix, bool) {
	get := func(field string) uint64 {
		v, _ := in.gauge(func(c counters.Counter) bool {
			return c.Source == counters.NetlinkQdisc && c.Object == obj && c.Field == field
		})
		return v
	}
	rate, burst, limit := get("rate"), get("burst"), get("limit")
	if rate == 0 || burst == 0 || limit == 0 {
		return Fix{}, false
	}
	want := max(2*limit, rate/10)
	return manual(shellJoin("tc", "qdisc", "change", "dev", ifn, "root", "tbf",
		"rate", fmt.Sprintf("%dbps", rate), "burst", fmt.Sprint(burst), "limit", fmt.Sprint(want)),
		fmt.Sprintf("limit %d", limit), "a larger queue absorbs bursts; raise the rate if it is too low",
		"a shaper's rate and queue are a policy someone configured: netdrop does not change them"), true
}

// qdiscDrops is the total qdisc loss in the interval, used to tell
// tx-socket drops that only repeat it.
func (in *input) qdiscDrops() uint64 {
	byIf := map[string]uint64{}
	for _, c := range in.delta.Counters {
		if c.Source == counters.NetlinkQdisc && c.Field == "drops" && !c.Gauge && c.Stage != stage.TCIngress {
			ifn, _ := qdiscObject(c.Object)
			if c.Value > byIf[ifn] {
				byIf[ifn] = c.Value
			}
		}
	}
	var t uint64
	for _, v := range byIf {
		t += v
	}
	return t
}

// wmemTarget is the send buffer limit proposed for sockets that run out of
// send buffer: 4 MiB.
const wmemTarget = 4194304

// sendProto names the protocol of the send-buffer counters that moved, ""
// when both did.
func sendProto(udp, tcp []counters.Counter) string {
	switch {
	case len(tcp) == 0:
		return "udp"
	case len(udp) == 0:
		return "tcp"
	}
	return ""
}

// ruleTxSocket: sends that failed for lack of send buffer. Udp SndbufErrors
// also counts sends the qdisc dropped (ENOBUFS from the device queue), so
// the qdisc's drops are subtracted: they are already a qdisc finding.
func ruleTxSocket(in *input) []Finding {
	udp := in.moved(field("Udp:SndbufErrors", "Udp6:SndbufErrors"))
	tcp := in.moved(field("TcpExt:TCPWqueueTooBig"))
	// IP output discards are the same packets again, seen one layer down
	// (a send that the qdisc or the device queue refused): evidence here,
	// loss only for what neither the qdisc nor the socket explains.
	outd := in.moved(field("Ip:OutDiscards", "Ip6:OutDiscards"))
	d := sum(udp)
	q := in.qdiscDrops()
	if q >= d {
		d = 0
	} else {
		d -= q
	}
	if rest := sum(outd); rest > q+sum(udp) && d == 0 {
		d = rest - q - sum(udp)
	}
	// TCPWqueueTooBig counts refused sends, which TCP retries: events.
	if d == 0 && sum(tcp) == 0 {
		return nil
	}
	f := Finding{
		Stage:    stage.TxSocket,
		Severity: max(in.lossSeverity(d), in.eventSeverity(sum(tcp))),
		Title:    fmt.Sprintf("sends failed for lack of socket send buffer: %d", d),
		Drops:    d,
		Evidence: evidence(udp, tcp, outd),
		Cause:    "the application wrote faster than the socket's send buffer drains (ENOBUFS / EAGAIN on send)",
		Fix: []Fix{
			in.raise("net.core.wmem_max", wmemTarget).withNote("the ceiling for SO_SNDBUF"),
			appFix(AppChange{Param: AppSndbuf, Proto: sendProto(udp, tcp), Value: wmemTarget, Limit: "net.core.wmem_max"}, "setsockopt before sending; the kernel caps it at net.core.wmem_max"),
		},
		Advice: "pace the sender, or handle EAGAIN/ENOBUFS by waiting for writability rather than retrying at once",
	}
	if d == 0 {
		f.Title = fmt.Sprintf("TCP sends refused: write queue too big (%d times)", sum(tcp))
	}
	if q > 0 {
		f.Cause += fmt.Sprintf(" (qdisc drops of %d are counted here too and were subtracted)", q)
	}
	return []Finding{f}
}

// neigh matches a column of either neighbour table's statistics.
func neigh(names ...string) match {
	return either(from(counters.ProcNetStatARPCache, names...), from(counters.ProcNetStatNDiscCache, names...))
}

// ruleNeighbor: packets dropped while the neighbour (ARP/NDP) entry was
// unresolved, or the table overflowed. res_failed counts failed
// resolutions, not packets: a resolution that fails drops every packet
// queued for it, which only unresolved_discards (while queued) and the
// tracer's NEIGH_FAILED count.
func ruleNeighbor(in *input) []Finding {
	unres := in.moved(neigh("unresolved_discards"))
	full := in.moved(neigh("table_fulls"))
	failed := in.moved(neigh("res_failed"))
	in.moved(neigh("forced_gc_runs"))
	if len(unres)+len(full)+len(failed) == 0 {
		return nil
	}
	d := sum(unres)
	f := Finding{
		Stage:    stage.Neighbor,
		Severity: max(in.lossSeverity(d), in.eventSeverity(sum(full)+sum(failed))),
		Drops:    d,
		Evidence: evidence(unres, full, failed),
		HostWide: hostWide(append(append(unres, full...), failed...)),
	}
	switch {
	case sum(full) > 0:
		f.Title = "neighbour table overflow"
		f.Cause = "the ARP/NDP table reached gc_thresh3 and could not add entries (dmesg: neighbor table overflow)"
		f.Fix = []Fix{
			in.raise("net.ipv4.neigh.default.gc_thresh1", 4096),
			in.raise("net.ipv4.neigh.default.gc_thresh2", 8192),
			in.raise("net.ipv4.neigh.default.gc_thresh3", 16384),
		}
	case d > 0:
		f.Title = fmt.Sprintf("%d packets dropped waiting for ARP/NDP resolution", d)
	default:
		f.Title = fmt.Sprintf("%d ARP/NDP resolution%s failed", sum(failed), plural(sum(failed)))
	}
	if sum(full) == 0 {
		f.Cause = "packets queued for a neighbour that did not answer (host down, wrong address, wrong subnet) or the per-neighbour queue overflowed"
		f.Fix = []Fix{
			inspect(neighShow(append(append(unres, full...), failed...)), "which neighbours do not answer"),
			inspect("netdrop trace --reason NEIGH_FAILED --flows", "which destinations"),
		}
		f.NotAutomatic = "a neighbour that does not answer is down, has another address, or is on another subnet: no setting on this host makes it answer"
	}
	return []Finding{f}
}

// neighShow is the ip command that lists the failed entries of the tables
// whose counters moved: ip -4 for ARP alone, ip -6 for NDP alone (a plain
// ip neigh lists both, and a user pasting it for an IPv6 loss reads ARP
// entries first).
func neighShow(cs []counters.Counter) string {
	var v4, v6 bool
	for _, c := range cs {
		switch c.Source {
		case counters.ProcNetStatARPCache:
			v4 = true
		case counters.ProcNetStatNDiscCache:
			v6 = true
		}
	}
	switch {
	case v6 && !v4:
		return "ip -6 neigh show nud failed"
	case v4 && !v6:
		return "ip -4 neigh show nud failed"
	}
	return "ip neigh show nud failed"
}

// ruleTxRing: the NIC or driver dropped packets on transmit.
func ruleTxRing(in *input) []Finding {
	var out []Finding
	for _, i := range in.perInterface(stage.TxRing, "tx_dropped", "tx_fifo_errors", "tx_aborted_errors", "tx_carrier_errors") {
		ifn := i.name
		f := Finding{
			Stage:    stage.TxRing,
			Severity: in.lossSeverity(i.drops),
			Title:    "transmit drops on " + ifn,
			Drops:    i.drops,
			Evidence: evidence(i.link, i.drv),
			Cause:    "the driver dropped packets on transmit: TX ring full, carrier lost, or (for veth) the peer's receive side refused them",
		}
		if n, ok := in.nic(ifn); ok && n.TxRingMax > n.TxRing && n.TxRing > 0 {
			f.Fix = append(f.Fix, setting(Change{Kind: ChangeRing, Target: ifn, Param: "tx", Current: fmt.Sprint(n.TxRing), Proposed: fmt.Sprint(n.TxRingMax)}, "the driver's maximum"))
		}
		f.Fix = append(f.Fix, inspect(shellJoin("ethtool", "-S", ifn)+" | grep -i tx", "which driver counter"), inspect("netdrop trace", "the drop reason and function"))
		out = append(out, f)
	}
	return out
}
