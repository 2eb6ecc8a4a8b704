package diagnose

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// input is what every rule sees: both snapshots, their delta, and which
// counters a rule has already explained (so the generic fallback does not
// report them twice).
type input struct {
	before, after, delta *counters.Snapshot
	interval             time.Duration
	used                 map[counters.Key]bool
	// sockets is the sock_diag view taken with the second snapshot, nil
	// when it was not read.
	sockets *sockets.Summary
	// socketsBefore is the view at the first snapshot; with it, sockets
	// are named by the drops they made in the interval (dropped).
	socketsBefore *sockets.Summary
	dropped       []sockets.Dropped
	// trace is the tracer's delta over the interval, nil without it.
	trace *droptrace.Snapshot
}

func newInput(a, b *counters.Snapshot, interval time.Duration) *input {
	return &input{before: a, after: b, delta: counters.Delta(a, b), interval: interval, used: map[counters.Key]bool{}}
}

// once reports whether the input compares against zero (totals since boot).
func (in *input) once() bool { return in.interval <= 0 }

// rate converts a count over the interval to a per-second rate.
func (in *input) rate(n uint64) float64 {
	if in.interval <= 0 {
		return 0
	}
	return float64(n) / in.interval.Seconds()
}

// match selects counters.
type match func(c counters.Counter) bool

// field matches the MIB counters named ("Udp:RcvbufErrors",
// "TcpExt:ListenDrops", "TCP:mem"), each only from the file that prints
// its group (mibSource): a counter of the same name from another source
// is not the same evidence.
//
// A rule builds its matchers on every analysis and runs them over every
// counter of the delta, so they are cheap to make and to run: a few names
// are compared in turn (a string comparison fails on the length first),
// more are looked up by field name alone.
func field(names ...string) match {
	srcs := make([]counters.SourceID, len(names))
	for i, n := range names {
		srcs[i] = mibSource(n)
	}
	if len(names) > 8 {
		want := make(map[string]counters.SourceID, len(names))
		for i, n := range names {
			want[n] = srcs[i]
		}
		return func(c counters.Counter) bool {
			src, ok := want[c.Field]
			return ok && c.Object == "" && c.Source == src
		}
	}
	return func(c counters.Counter) bool {
		if c.Object != "" {
			return false
		}
		for i, n := range names {
			if c.Field == n && c.Source == srcs[i] {
				return true
			}
		}
		return false
	}
}

// mibGroups says which file prints each group of MIB counters the rules
// read: /proc/net/snmp, netstat and snmp6 (net/ipv4/proc.c,
// net/ipv6/proc.c) and sockstat's "TCP:" line.
var mibGroups = map[string]counters.SourceID{
	"Ip": counters.ProcNetSNMP, "Icmp": counters.ProcNetSNMP, "Tcp": counters.ProcNetSNMP,
	"Udp": counters.ProcNetSNMP, "UdpLite": counters.ProcNetSNMP,
	"IpExt": counters.ProcNetNetstat, "TcpExt": counters.ProcNetNetstat,
	"Ip6": counters.ProcNetSNMP6, "Icmp6": counters.ProcNetSNMP6, "Udp6": counters.ProcNetSNMP6,
	"UdpLite6": counters.ProcNetSNMP6,
	"TCP":      counters.ProcNetSockstat,
}

// mibSource is the source of a MIB counter name. A group missing from
// mibGroups is a mistake in a rule, caught by any test that runs it.
func mibSource(name string) counters.SourceID {
	group, _, _ := strings.Cut(name, ":")
	src, ok := mibGroups[group]
	if !ok {
		panic(fmt.Sprintf("diagnose: no source known for counter group %q of %q", group, name))
	}
	return src
}

// from matches counters read from src whose Field is one of names (any
// field when names is empty).
func from(src counters.SourceID, names ...string) match {
	return func(c counters.Counter) bool {
		if c.Source != src {
			return false
		}
		if len(names) == 0 {
			return true
		}
		for _, n := range names {
			if c.Field == n {
				return true
			}
		}
		return false
	}
}

// either matches counters that any of ms matches.
func either(ms ...match) match {
	return func(c counters.Counter) bool {
		for _, m := range ms {
			if m(c) {
				return true
			}
		}
		return false
	}
}

// moved returns the event counters (not gauges) selected by m whose delta
// is positive, and marks every selected counter as explained.
func (in *input) moved(m match) []counters.Counter {
	var out []counters.Counter
	for _, c := range in.delta.Counters {
		if c.Gauge || !m(c) {
			continue
		}
		in.used[c.Key()] = true
		if c.Value > 0 {
			out = append(out, c)
		}
	}
	return out
}

// gauges returns the current level of gauges selected by m.
func (in *input) gauges(m match) []counters.Counter {
	var out []counters.Counter
	for _, c := range in.after.Counters {
		if c.Gauge && m(c) {
			out = append(out, c)
		}
	}
	return out
}

// gauge returns the first gauge selected by m.
func (in *input) gauge(m match) (uint64, bool) {
	gs := in.gauges(m)
	if len(gs) == 0 {
		return 0, false
	}
	return gs[0].Value, true
}

// sum adds the deltas of cs.
func sum(cs []counters.Counter) uint64 {
	var n uint64
	for _, c := range cs {
		n += c.Value
	}
	return n
}

// sumDistinct adds the deltas of cs, leaving out counters whose events are
// already counted by another counter in cs (the catalog's IncludedIn:
// IpExt:InCsumErrors is part of Ip:InHdrErrors), so no packet counts twice.
func sumDistinct(cs []counters.Counter) uint64 {
	present := map[string]bool{}
	for _, c := range cs {
		present[c.Field] = true
	}
	var n uint64
	for _, c := range cs {
		if fi, ok := counters.LookupCounter(c.Source, c.Field); ok && fi.IncludedIn != "" && present[fi.IncludedIn] {
			continue
		}
		n += c.Value
	}
	return n
}

// evidence turns moved counters into evidence, largest first.
func evidence(cs ...[]counters.Counter) []Evidence {
	var out []Evidence
	for _, group := range cs {
		for _, c := range group {
			out = append(out, counterEvidence(c))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Delta > out[j].Delta })
	return out
}

// gaugeEvidence shows a level (table use, queue length) as evidence.
func gaugeEvidence(c counters.Counter, delta uint64) Evidence {
	return Evidence{Source: c.Source, Object: c.Object, Field: c.Field, Delta: delta, Value: c.Value}
}

// hostWide reports whether any of cs is a host-wide counter.
func hostWide(cs []counters.Counter) bool {
	for _, c := range cs {
		if c.HostWide {
			return true
		}
	}
	return false
}

// plural is "s" unless n is one.
func plural(n uint64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sysctl returns a setting as read, or "" when it was not read.
func (in *input) sysctl(name string) string { return in.after.Sysctls[name] }

// sysctlInt returns the first number of a setting.
func (in *input) sysctlInt(name string) (int64, bool) {
	v := strings.Fields(in.sysctl(name))
	if len(v) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	return n, err == nil
}

// sysctlFields returns the numbers of a multi-value setting such as
// tcp_rmem ("4096 131072 6291456").
func (in *input) sysctlFields(name string) []int64 {
	var out []int64
	for _, f := range strings.Fields(in.sysctl(name)) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil
		}
		out = append(out, n)
	}
	return out
}

// raise proposes a sysctl value: at least want, and at least double the
// current one, with the current value kept so the user sees the step.
func (in *input) raise(name string, want int64) Fix {
	c := Change{Kind: ChangeSysctl, Target: name, Proposed: strconv.FormatInt(want, 10)}
	if cur, ok := in.sysctlInt(name); ok {
		c.Current = strconv.FormatInt(cur, 10)
		if cur*2 > want {
			c.Proposed = strconv.FormatInt(cur*2, 10)
		}
	}
	return setting(c, "")
}

// set proposes a sysctl value as it is, with the current value if read.
func (in *input) set(name, value string) Fix {
	return setting(Change{Kind: ChangeSysctl, Target: name, Current: strings.Join(strings.Fields(in.sysctl(name)), " "), Proposed: value}, "")
}

// A rule looks at the input and returns the findings of one stage.
type rule func(in *input) []Finding

// rules are applied in packet-path order; the generic fallback (ruleGeneric)
// runs after them so it sees what they explained.
var rules = []rule{
	ruleNIC,
	ruleRxRing,
	ruleXDP,
	ruleSoftirq,
	ruleSoftirqBalance,
	ruleTCIngress, // before qdisc: it claims the ingress/clsact qdiscs' drops
	ruleBridge,
	ruleIP,
	ruleNetfilter,
	ruleConntrack,
	ruleTunnel,
	ruleNoSocket,
	ruleSocketRcvbuf,
	ruleTCPMemory,
	ruleTCPListen,
	ruleTCP,
	ruleRetrans,
	rulePorts,
	ruleQdisc, // before tx-socket: Udp SndbufErrors repeats qdisc drops
	ruleTxSocket,
	ruleNeighbor,
	ruleTxRing,
}

// ruleGeneric reports every counter with a stage that moved and that no
// specific rule explained, so that no drop counter is ever silently lost.
// Where a rule already made a finding at that stage, the counters join it
// as evidence: one stage, one cause, one finding. Elsewhere they make one
// finding per stage, graded by their units.
func ruleGeneric(in *input, fs []Finding) []Finding {
	byStage := map[stage.ID][]counters.Counter{}
	for _, c := range in.delta.Counters {
		if c.Gauge || c.Stage == "" || c.Value == 0 || in.used[c.Key()] {
			continue
		}
		byStage[c.Stage] = append(byStage[c.Stage], c)
	}
	for _, s := range stage.All() {
		cs := byStage[s.ID]
		if len(cs) == 0 {
			continue
		}
		if i := firstAt(fs, s.ID); i >= 0 {
			fs[i].Evidence = append(fs[i].Evidence, evidence(cs)...)
			continue
		}
		// Unknown counters may describe the same packets; take the
		// largest rather than the sum so drops are not inflated.
		drops, events := byUnit(cs)
		d, e := maxValue(drops), maxValue(events)
		f := Finding{
			Stage:    s.ID,
			Severity: atMost(max(in.lossSeverity(d), in.eventSeverity(e)), Warning),
			Title:    "drop counters moved at the " + s.Title,
			Drops:    d,
			Evidence: evidence(cs),
			Cause:    s.Where + ".",
			Fix:      []Fix{inspect("netdrop counters --stage "+shellQuote(string(s.ID))+" --nonzero", "every counter of this stage")},
			HostWide: hostWide(cs),
		}
		if d == 0 {
			f.Title = "counters of events (not packets lost) moved at the " + s.Title
		}
		fs = append(fs, f)
	}
	return fs
}
