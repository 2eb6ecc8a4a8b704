package diagnose

import (
	"fmt"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// ipCause explains each IP-layer counter and what to do about it.
var ipCause = map[string]struct {
	cause string
	fix   Fix
}{
	"Ip:InHdrErrors":               {"IPv4 headers were invalid (bad version, TTL exceeded, options)", advice("check the sender and any middlebox rewriting headers")},
	"Ip:InAddrErrors":              {"the destination address is not local and forwarding is off", advice("check addressing; if this host should route, enable forwarding (net.ipv4.ip_forward=1)")},
	"IpExt:InNoRoutes":             {"no route for received packets", advice("find the missing route with ip route get DESTINATION, and add it")},
	"Ip:InDiscards":                {"IPv4 discarded packets for lack of resources", advice("check memory pressure (free -m) and neighbour settings")},
	"Ip:ReasmFails":                {"fragment reassembly failed", advice("raise net.ipv4.ipfrag_high_thresh, or avoid fragmentation (path MTU)")},
	"Ip:ReasmTimeout":              {"fragments timed out before reassembly", advice("fragments are lost upstream; avoid fragmentation (path MTU)")},
	"IpExt:InCsumErrors":           {"IPv4 packets with bad checksums", advice("NIC or upstream corruption; check the offloads (ethtool -k)")},
	rpFilterField:                  {"reverse-path filter dropped packets (rpFilter explains them by mode)", advice("rp_filter")},
	"Ip6:InHdrErrors":              {"IPv6 headers were invalid", advice("check the sender")},
	"Ip6:InAddrErrors":             {"IPv6 destination not local and forwarding is off", advice("check addressing")},
	"Ip6:InNoRoutes":               {"no IPv6 route for received packets", advice("find the missing route with ip -6 route get DESTINATION, and add it")},
	"Ip6:InDiscards":               {"IPv6 discarded packets for lack of resources", advice("check memory pressure")},
	"Ip6:ReasmFails":               {"IPv6 reassembly failed", advice("avoid fragmentation (path MTU)")},
	"Ip6:InTruncatedPkts":          {"IPv6 packets shorter than their header says", advice("check the sender")},
	"Ip6:InCsumErrors":             {"IPv6 packets with bad checksums", advice("NIC or upstream corruption")},
	"Icmp:InErrors":                {"ICMP messages with errors", advice("check the sender")},
	"Udp:InCsumErrors":             {"UDP datagrams with bad checksums", advice("NIC or upstream corruption; check the offloads (ethtool -k)")},
	"Udp6:InCsumErrors":            {"UDP/IPv6 datagrams with bad checksums", advice("NIC or upstream corruption")},
	"IpExt:InTruncatedPkts":        {"IPv4 packets shorter than their header says", advice("check the sender")},
	"TcpExt:IPReversePathFilterV6": {"reverse-path filter dropped IPv6 packets", advice("check rp_filter")},
}

// ruleIP: packets discarded by IP receive and routing.
func ruleIP(in *input) []Finding {
	var names []string
	for n := range ipCause {
		names = append(names, n)
	}
	cs := in.moved(field(names...))
	if len(cs) == 0 {
		return nil
	}
	drops := sumDistinct(cs)
	ev := evidence(cs)
	top := ipCause[ev[0].Field]
	cause := top.cause
	var fix []Fix
	seen := map[string]bool{}
	for _, e := range ev {
		c, ok := ipCause[e.Field]
		if !ok || seen[c.fix.Command+c.fix.Text] {
			continue
		}
		seen[c.fix.Command+c.fix.Text] = true
		if e.Field == rpFilterField {
			rpCause, rpFix := in.rpFilter()
			if e.Field == ev[0].Field {
				cause = rpCause
			}
			fix = append(fix, rpFix...)
			continue
		}
		f := c.fix
		if f.Change != nil {
			// The table holds the proposal; the value now comes from
			// this snapshot.
			f = in.set(f.Change.Target, f.Change.Proposed).withNote(f.Note)
		}
		fix = append(fix, f)
	}
	return []Finding{{
		Stage:    stage.IP,
		Severity: in.lossSeverity(drops),
		Title:    "IP layer discarded packets: " + ev[0].Name(),
		Drops:    drops,
		Evidence: ev,
		Cause:    cause,
		Fix:      fix,
	}}
}

// rpFilterField counts IPv4 packets the reverse-path filter dropped.
const rpFilterField = "TcpExt:IPReversePathFilter"

// rpFilter explains reverse-path filter drops by the mode in force. The
// filter drops a packet when the route back to its source leaves by
// another interface (strict mode only: asymmetric routing, which loose
// mode accepts) or when there is no route back at all (both modes: only a
// route fixes that). The effective mode of an interface is the larger of
// conf.all and conf.IF; with conf.all at 2 every interface is loose, so
// the drops can only be sources with no route back.
func (in *input) rpFilter() (string, []Fix) {
	routes := inspect("ip route get SOURCE", "the route back to a dropped source: another interface than the one it arrived on is asymmetric routing, an error is no route back")
	if all, ok := in.sysctlInt("net.ipv4.conf.all.rp_filter"); ok && all == 2 {
		return "the reverse-path filter (loose mode, net.ipv4.conf.all.rp_filter=2) dropped packets whose source has no route back at all: a missing route, not asymmetric routing (loose mode already accepts that)",
			[]Fix{routes, advice("add a route back to the senders' network (ip route add NETWORK via GATEWAY dev INTERFACE), or a default route")}
	}
	return "the reverse-path filter dropped packets whose route back to the source leaves by another interface (asymmetric routing, which loose mode accepts) or does not exist (no route back, which only a route fixes)",
		[]Fix{
			in.set("net.ipv4.conf.all.rp_filter", "2").withNote("loose mode, for asymmetric routing"),
			routes,
			advice("if ip route get finds no route back, loose mode will not help: add a route to the senders' network instead"),
		}
}

// ruleNetfilter: packets dropped or rejected by firewall rules. These are
// often intended, so they are warnings: the finding says which rules, and
// the user decides.
func ruleNetfilter(in *input) []Finding {
	cs := in.moved(func(c counters.Counter) bool {
		return c.Stage == stage.Netfilter && c.Source == counters.NetlinkNftables
	})
	if len(cs) == 0 {
		return nil
	}
	drops := sum(cs)
	sev := atMost(in.lossSeverity(drops), Warning)
	if in.once() {
		sev = Info
	}
	ev := evidence(cs)
	return []Finding{{
		Stage:    stage.Netfilter,
		Severity: sev,
		Title:    fmt.Sprintf("firewall rules dropped or rejected %d packets", drops),
		Drops:    drops,
		Evidence: ev,
		Cause:    "a DROP or REJECT rule (or a chain's drop policy) matched; intended policy or a rule that is too broad: " + ev[0].Name(),
		Fix: []Fix{
			inspect("nft -a list ruleset", "find the rule by its handle"),
			inspect("iptables-save -c", "for iptables rules, with their counters"),
			advice("if the rule is wrong, delete it by its handle: nft delete rule FAMILY TABLE CHAIN handle N"),
		},
		NotAutomatic: "a firewall rule that drops may be your policy: netdrop never deletes one; delete it by hand if it is wrong",
	}}
}

// ruleConntrack: the connection tracking table is full (drop), evicts
// (early_drop), or refuses inserts (insert_failed: the NAT port race; or
// chain length over the limit).
func ruleConntrack(in *input) []Finding {
	drop := in.moved(from(counters.ProcNetStatConntrack, "drop"))
	early := in.moved(from(counters.ProcNetStatConntrack, "early_drop"))
	insert := in.moved(from(counters.ProcNetStatConntrack, "insert_failed"))
	chain := in.moved(from(counters.ProcNetStatConntrack, "chainlength"))
	in.moved(from(counters.ProcNetStatConntrack)) // other columns are context
	count, hasCount := in.gauge(from(counters.ProcSysConntrackCount, "nf_conntrack_count"))
	max, hasMax := in.gauge(from(counters.ProcSysConntrackMax, "nf_conntrack_max"))
	var countEv []Evidence
	for _, g := range in.gauges(either(from(counters.ProcSysConntrackCount), from(counters.ProcSysConntrackMax))) {
		countEv = append(countEv, gaugeEvidence(g, 0))
	}
	var out []Finding
	full := hasCount && hasMax && max > 0 && float64(count) >= 0.9*float64(max)
	if d := sum(drop) + sum(early); d > 0 || full {
		f := Finding{
			Stage:    stage.Conntrack,
			Severity: in.lossSeverity(sum(drop)),
			Drops:    sum(drop),
			Evidence: append(evidence(drop, early), countEv...),
			Cause:    "the connection tracking table is full: new flows are dropped (drop) or old unassured entries evicted (early_drop)",
			Fix:      in.conntrackFixes(),
			Advice:   "shorten timeouts for short-lived flows (net.netfilter.nf_conntrack_udp_timeout), or exempt heavy UDP from tracking with a NOTRACK rule in the raw table",
		}
		switch {
		case sum(drop) > 0:
			f.Title = fmt.Sprintf("conntrack table full: %d new connections dropped", sum(drop))
		case full:
			f.Title = fmt.Sprintf("conntrack table %.0f%% full (%d of %d)", 100*float64(count)/float64(max), count, max)
			f.Severity = Warning
		default:
			f.Title = fmt.Sprintf("conntrack evicted %d entries to make room", sum(early))
			f.Severity = in.eventSeverity(sum(early))
		}
		if in.once() && f.Severity > Warning {
			f.Severity = Warning
		}
		out = append(out, f)
	}
	if d := sum(insert) + sum(chain); d > 0 {
		out = append(out, Finding{
			Stage:    stage.Conntrack,
			Severity: in.lossSeverity(d),
			Title:    fmt.Sprintf("conntrack refused %d inserts", d),
			Drops:    d,
			Evidence: evidence(insert, chain),
			Cause:    "two packets of one new flow raced to confirm the same entry (insert_failed: typical of parallel UDP through SNAT/DNAT, e.g. DNS A and AAAA queries), or a hash chain grew too long (chainlength)",
			Fix: []Fix{
				advice("randomize the source ports of NAT: --random-fully on the MASQUERADE or SNAT rule (nft: masquerade random,fully)"),
				advice("if chainlength moved, raise the hash size: /sys/module/nf_conntrack/parameters/hashsize"),
			},
			Advice:       "for DNS in containers: options single-request-reopen in resolv.conf, or a node-local DNS cache",
			NotAutomatic: "the fix is in your NAT rules and resolver settings, which netdrop does not edit",
		})
	}
	return out
}

// conntrackFixes raises the table size, and the hash buckets with it when
// they would fall below a quarter of the new size (longer chains make every
// lookup slower).
func (in *input) conntrackFixes() []Fix {
	fix := []Fix{in.raise("net.netfilter.nf_conntrack_max", 262144)}
	max := int64(262144)
	if cur, ok := in.sysctlInt("net.netfilter.nf_conntrack_max"); ok && cur*2 > max {
		max = cur * 2
	}
	buckets, ok := in.sysctlInt("net.netfilter.nf_conntrack_buckets")
	if !ok || buckets < max/4 {
		now := ""
		if ok {
			now = fmt.Sprint(buckets)
		}
		fix = append(fix, manual(fmt.Sprintf("echo %d > /sys/module/nf_conntrack/parameters/hashsize", max/4), now, "buckets at a quarter of the table",
			"resizing the hash table rehashes every tracked connection at once, a pause netdrop leaves you to choose the time of"))
	}
	return fix
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ruleNoSocket: datagrams for a port nobody listens on.
func ruleNoSocket(in *input) []Finding {
	cs := in.moved(field("Udp:NoPorts", "Udp6:NoPorts", "UdpLite:NoPorts", "UdpLite6:NoPorts"))
	if len(cs) == 0 {
		return nil
	}
	d := sum(cs)
	return []Finding{{
		Stage:    stage.NoSocket,
		Severity: in.lossSeverity(d),
		Title:    fmt.Sprintf("%d UDP datagrams to ports nobody listens on", d),
		Drops:    d,
		Evidence: evidence(cs),
		Cause:    "datagrams arrived for a port with no socket (the kernel answered ICMP port unreachable): the service is down, restarting, bound to another address, or the sender is misconfigured",
		Fix: []Fix{
			inspect("netdrop sockets --state listen", "is the service bound, and to which address?"),
			inspect("netdrop trace --reason NO_SOCKET --flows", "which ports and senders"),
		},
		NotAutomatic: "no setting makes a service listen: start it, or bind it to the address and port its senders use",
	}}
}
