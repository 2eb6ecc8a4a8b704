package diagnose

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// perObject groups counters by their Object (an interface, a CPU).
func perObject(cs []counters.Counter) map[string][]counters.Counter {
	out := map[string][]counters.Counter{}
	for _, c := range cs {
		out[c.Object] = append(out[c.Object], c)
	}
	return out
}

// objects returns the keys of a perObject map in order.
func objects(m map[string][]counters.Counter) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ifaceDrops is what one interface lost at a NIC stage. The stats64
// counters are the count; driver (ethtool -S) counters repeat them in the
// driver's own words and count only when stats64 says nothing.
type ifaceDrops struct {
	name      string
	link, drv []counters.Counter
	drops     uint64
}

// perInterface groups the moved stats64 fields and the driver counters of
// stage st by interface, in name order.
func (in *input) perInterface(st stage.ID, linkFields ...string) []ifaceDrops {
	link := in.moved(from(counters.NetlinkLinkStats, linkFields...))
	drv := in.moved(func(c counters.Counter) bool {
		return c.Stage == st && c.Source == counters.EthtoolStats
	})
	byIf := perObject(append(link, drv...))
	var out []ifaceDrops
	for _, name := range objects(byIf) {
		i := ifaceDrops{name: name}
		for _, c := range byIf[name] {
			if c.Source == counters.EthtoolStats {
				i.drv = append(i.drv, c)
			} else {
				i.link = append(i.link, c)
			}
		}
		i.drops = sum(i.link)
		if i.drops == 0 {
			i.drops = maxValue(i.drv)
		}
		out = append(out, i)
	}
	return out
}

// nic returns the layout of an interface, if read.
func (in *input) nic(name string) (counters.NIC, bool) {
	for _, n := range in.after.NICs {
		if n.Name == name {
			return n, true
		}
	}
	return counters.NIC{}, false
}

// ruleNIC: frames that arrive corrupt. Driver (ethtool) counters with the
// same meaning are evidence, not extra drops: stats64 already counts them.
func ruleNIC(in *input) []Finding {
	// A tunnel device's error fields are the tunnel stage (ruleTunnel).
	link := in.moved(func(c counters.Counter) bool {
		return c.Stage == stage.NIC && from(counters.NetlinkLinkStats, "rx_crc_errors", "rx_frame_errors", "rx_length_errors")(c)
	})
	drv := in.moved(func(c counters.Counter) bool {
		return c.Stage == stage.NIC && c.Source == counters.EthtoolStats
	})
	if len(link)+len(drv) == 0 {
		return nil
	}
	drops := sum(link)
	if drops == 0 {
		drops = maxValue(drv)
	}
	ifs := strings.Join(objects(perObject(append(link, drv...))), ", ")
	return []Finding{{
		Stage:    stage.NIC,
		Severity: in.lossSeverity(drops),
		Title:    "corrupt frames received on " + ifs,
		Drops:    drops,
		Evidence: evidence(link, drv),
		Cause:    "frames arrive with bad CRC, framing or length: a physical problem (cable, optic, port), a speed/duplex mismatch, or missing FEC",
		Fix: []Fix{
			inspect(shellJoin("ethtool", firstWord(ifs)), "speed, duplex and link partner"),
			inspect(shellJoin("ethtool", "--show-fec", firstWord(ifs)), "forward error correction"),
			advice("replace the cable or optic; check the switch port's error counters"),
		},
		NotAutomatic: "corrupt frames are a physical fault (cable, optic, switch port, speed or duplex mismatch): no setting on this host repairs them",
	}}
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, ", "); i > 0 {
		return s[:i]
	}
	return s
}

func maxValue(cs []counters.Counter) uint64 {
	var m uint64
	for _, c := range cs {
		if c.Value > m {
			m = c.Value
		}
	}
	return m
}

// ruleRxRing: the NIC had no free descriptor for an arriving frame. The fix
// is computed from the ring size and channel count the driver reports.
func ruleRxRing(in *input) []Finding {
	var out []Finding
	for _, i := range in.perInterface(stage.RxRing, "rx_missed_errors", "rx_fifo_errors", "rx_over_errors") {
		ifname := i.name
		f := Finding{
			Stage:    stage.RxRing,
			Severity: in.lossSeverity(i.drops),
			Title:    "RX ring overflow on " + ifname,
			Drops:    i.drops,
			Evidence: evidence(i.link, i.drv),
			Cause:    "the NIC found no free receive descriptor: the ring is too small for the bursts, or the CPU serving its interrupt is too busy to refill it",
			HostWide: hostWide(append(i.link, i.drv...)),
		}
		n, ok := in.nic(ifname)
		if ok && n.RxRingMax > 0 && n.RxRing < n.RxRingMax {
			f.Fix = append(f.Fix, setting(Change{Kind: ChangeRing, Target: ifname, Param: "rx", Current: fmt.Sprint(n.RxRing), Proposed: fmt.Sprint(n.RxRingMax)}, "the driver's maximum"))
		}
		if ok && n.MaxCombinedChannels > n.CombinedChannels {
			want := uint32(in.after.CPUs)
			if want == 0 || want > n.MaxCombinedChannels {
				want = n.MaxCombinedChannels
			}
			if want > n.CombinedChannels {
				f.Fix = append(f.Fix, setting(Change{Kind: ChangeChannels, Target: ifname, Param: "combined", Current: fmt.Sprint(n.CombinedChannels), Proposed: fmt.Sprint(want)}, "spread the load over more queues and CPUs"))
			}
		}
		if ok && !n.AdaptiveRx {
			f.Fix = append(f.Fix, manual(shellJoin("ethtool", "-C", ifname, "adaptive-rx", "on"), fmt.Sprintf("adaptive-rx off, rx-usecs %d", n.RxUsecs), "fewer interrupts under load",
				"interrupt coalescing trades latency for throughput, a choice netdrop leaves to you"))
		}
		if len(f.Fix) == 0 {
			f.Fix = append(f.Fix, inspect(shellJoin("ethtool", "-g", ifname), "ring sizes and their maximum"), inspect(shellJoin("ethtool", "-l", ifname), "channels and their maximum"),
				advice("ring and channels are at their maximum: spread the interrupts (irqbalance) or add RPS"))
		}
		out = append(out, f)
	}
	return out
}

// ruleSoftirq: the per-CPU backlog overflowed (dropped) or the NET_RX
// budget ran out with work left (time_squeeze, a near-drop).
func ruleSoftirq(in *input) []Finding {
	var out []Finding
	dropped := in.moved(from(counters.ProcNetSoftnetStat, "dropped"))
	// flow_limit_count is included in dropped (net/core/dev.c counts a
	// flow-limit drop as a backlog drop too): evidence only.
	flow := in.moved(from(counters.ProcNetSoftnetStat, "flow_limit_count"))
	rxdrop := in.moved(from(counters.NetlinkLinkStats, "rx_dropped"))
	if d := sum(dropped); d > 0 {
		f := Finding{
			Stage:    stage.Softirq,
			Severity: in.lossSeverity(d),
			Title:    "per-CPU backlog full: " + cpuList(dropped),
			Drops:    d,
			Evidence: evidence(dropped, flow, rxdrop),
			Cause:    "packets queued for the NET_RX softirq (RPS, veth, loopback, non-NAPI drivers) found the CPU's input queue over net.core.netdev_max_backlog",
			Fix: []Fix{
				in.raise("net.core.netdev_max_backlog", 10000),
			},
			Advice:   "if one CPU takes all the traffic, spread it: more NIC queues (ethtool -L), RPS (echo <mask> > /sys/class/net/IF/queues/rx-N/rps_cpus) or irqbalance",
			HostWide: hostWide(dropped),
		}
		if sum(flow) > 0 {
			f.Fix = append(f.Fix, in.raise("net.core.flow_limit_table_len", 8192).withNote("flow limit dropped heavy flows"))
		}
		out = append(out, f)
	} else if d := sum(rxdrop); d > 0 {
		out = append(out, Finding{
			Stage:    stage.Softirq,
			Severity: atMost(in.lossSeverity(d), Warning),
			Title:    "the stack dropped received packets after the driver on " + strings.Join(objects(perObject(rxdrop)), ", "),
			Drops:    d,
			Evidence: evidence(rxdrop),
			Cause:    "rx_dropped counts packets the kernel discarded after the driver handed them over: a full backlog, no protocol handler (unknown EtherType, VLAN not configured), or an inactive bond slave",
			Fix:      []Fix{inspect("netdrop trace", "the drop reason names which of these it is")},
		})
	}
	squeeze := in.moved(from(counters.ProcNetSoftnetStat, "time_squeeze"))
	if s := sum(squeeze); s > 0 {
		f := Finding{
			Stage:    stage.Softirq,
			Severity: in.eventSeverity(s),
			Title:    "NET_RX budget exhausted with work left (time_squeeze) on " + cpuList(squeeze),
			Evidence: evidence(squeeze),
			Cause:    "the softirq processed its budget of packets or time and left packets waiting: a near-drop, the step before the ring or backlog overflows",
			Fix: []Fix{
				in.raise("net.core.netdev_budget", 600),
				in.raise("net.core.netdev_budget_usecs", 4000),
			},
			HostWide: hostWide(squeeze),
		}
		if in.once() {
			f.Severity = Info
		}
		out = append(out, f)
	}
	return out
}

// cpuList names the CPUs of per-CPU counters, busiest first.
func cpuList(cs []counters.Counter) string {
	sorted := append([]counters.Counter(nil), cs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Value > sorted[j].Value })
	var names []string
	for _, c := range sorted {
		names = append(names, c.Object)
	}
	if len(names) > 4 {
		names = append(names[:4], "…")
	}
	return strings.Join(names, ", ")
}

// ruleSoftirqBalance finds receive work concentrated on one CPU while others
// idle: NET_RX softirqs, the NIC's interrupts, or softirq CPU time. These are
// near-drops: the hot CPU is where the ring and the backlog overflow first.
func ruleSoftirqBalance(in *input) []Finding {
	if in.once() || in.after.CPUs < 2 {
		return nil
	}
	var out []Finding
	// Object is the CPU, Field the softirq.
	netrx := in.moved(from(counters.ProcSoftirqs, "NET_RX"))
	// Concentration is a problem only while the other CPUs idle: when
	// they are busy too, spreading the receive work onto them helps
	// nothing, the host is short of CPU.
	if hot, share, total := hottest(netrx); total > 0 && in.rate(total) >= concentratedRate && share >= 0.8 && in.othersIdle(hot) {
		out = append(out, Finding{
			Stage:    stage.Softirq,
			Severity: Warning,
			Title:    fmt.Sprintf("NET_RX softirq concentrated on %s (%.0f%% of %d)", hot, share*100, total),
			Evidence: evidence(netrx),
			Cause:    "one CPU runs nearly all receive processing while others idle: one RX queue, IRQ affinity pinned to one CPU, or a single flow",
			Fix:      in.spreadFixes(),
			HostWide: true,
		})
	}
	// Softirq share of CPU time, per CPU, from /proc/stat.
	soft := in.moved(from(counters.ProcStat, "softirq"))
	totals := perObject(in.moved(from(counters.ProcStat, "total")))
	for _, c := range soft {
		if c.Object == "cpu" {
			continue // the all-CPU line: an average hides the hot CPU
		}
		t := totals[c.Object]
		if len(t) == 0 || t[0].Value == 0 {
			continue
		}
		share := float64(c.Value) / float64(t[0].Value)
		if share >= 0.5 {
			out = append(out, Finding{
				Stage:    stage.Softirq,
				Severity: Warning,
				Title:    fmt.Sprintf("%s spends %.0f%% of its time in softirq", c.Object, share*100),
				Evidence: []Evidence{counterEvidence(c), counterEvidence(t[0])},
				Cause:    "a CPU saturated by packet processing drops next: its backlog and the rings it serves overflow",
				Fix:      in.spreadFixes(),
				HostWide: true,
			})
		}
	}
	// NIC interrupts: each IRQ line of a NIC, all on one CPU.
	for _, n := range in.after.NICs {
		var cs []counters.Counter
		for _, irq := range n.IRQs {
			cs = append(cs, in.moved(func(c counters.Counter) bool {
				n := strconv.Itoa(irq.Number)
				return c.Source == counters.ProcInterrupts && (c.Object == n || strings.HasPrefix(c.Object, n+" ")) && strings.HasPrefix(c.Field, "cpu")
			})...)
		}
		byCPU := map[string]uint64{}
		var total uint64
		for _, c := range cs {
			byCPU[c.Field] += c.Value
			total += c.Value
		}
		var hot string
		var max uint64
		for cpu, v := range byCPU {
			if v > max {
				hot, max = cpu, v
			}
		}
		if total > 0 && in.rate(total) >= concentratedRate && float64(max)/float64(total) >= 0.8 && in.othersIdle(hot) {
			out = append(out, Finding{
				Stage:    stage.Softirq,
				Severity: Warning,
				Title:    fmt.Sprintf("%s interrupts concentrated on %s (%.0f%%)", n.Name, hot, 100*float64(max)/float64(total)),
				Evidence: evidence(cs),
				Cause:    "all of the NIC's queue interrupts land on one CPU",
				Fix:      in.spreadFixes(),
				HostWide: true,
			})
		}
	}
	return out
}

// othersIdle reports whether every CPU but hot spent at least
// othersIdleShare of the interval idle, by /proc/stat; false when that is
// not known.
func (in *input) othersIdle(hot string) bool {
	idle := map[string]uint64{}
	total := map[string]uint64{}
	for _, c := range in.delta.Counters {
		if c.Source != counters.ProcStat || c.Object == "cpu" || c.Object == hot {
			continue
		}
		switch c.Field {
		case "idle":
			idle[c.Object] = c.Value
		case "total":
			total[c.Object] = c.Value
		}
	}
	if len(total) == 0 {
		return false
	}
	for cpu, t := range total {
		if t == 0 {
			continue // no tick in a short interval: no evidence of work
		}
		if float64(idle[cpu]) < othersIdleShare*float64(t) {
			return false
		}
	}
	return true
}

// concentratedRate is the NET_RX softirq (or NIC interrupt) rate per second
// below which one CPU doing all the work is no concern: a single flow always
// lands on one CPU, and at a few thousand per second that CPU is mostly idle.
const concentratedRate = 20000

// hottest returns the busiest per-CPU counter, its share and the total.
func hottest(cs []counters.Counter) (string, float64, uint64) {
	var total, max uint64
	var hot string
	for _, c := range cs {
		total += c.Value
		name := c.Field
		if strings.HasPrefix(c.Object, "cpu") {
			name = c.Object
		}
		if c.Value > max {
			max, hot = c.Value, name
		}
	}
	if total == 0 {
		return "", 0, 0
	}
	return hot, float64(max) / float64(total), total
}

// spreadFixes proposes how to spread receive work over CPUs, from the NIC
// layout that was read.
func (in *input) spreadFixes() []Fix {
	var fix []Fix
	cpus := in.after.CPUs
	mask := allCPUMask(cpus)
	for _, n := range in.after.NICs {
		if n.MaxCombinedChannels > n.CombinedChannels && n.CombinedChannels > 0 {
			want := n.MaxCombinedChannels
			if cpus > 0 && uint32(cpus) < want {
				want = uint32(cpus)
			}
			if want > n.CombinedChannels {
				fix = append(fix, setting(Change{Kind: ChangeChannels, Target: n.Name, Param: "combined", Current: fmt.Sprint(n.CombinedChannels), Proposed: fmt.Sprint(want)}, "one queue per CPU"))
			}
		}
		if n.RxQueues > 0 && n.RxQueues < cpus {
			for q, m := range n.RPSCPUs {
				// "" is a mask that could not be read: it may be on.
				if m != "" && strings.Trim(m, "0,") == "" {
					fix = append(fix, setting(Change{Kind: ChangeRPSCPUs, Target: fmt.Sprintf("%s rx-%d", n.Name, q), Current: m, Proposed: mask}, "RPS: spread this queue over all CPUs"))
				}
			}
		}
		for _, irq := range n.IRQs {
			if irq.Affinity != "" && !strings.ContainsAny(irq.Affinity, ",-") {
				fix = append(fix, Fix{Kind: FixAdvice, Text: fmt.Sprintf("IRQ %d (%s) is pinned to CPU %s: run irqbalance, or write other CPUs to /proc/irq/%d/smp_affinity_list", irq.Number, irq.Name, irq.Affinity, irq.Number), Now: irq.Affinity})
			}
		}
	}
	if len(fix) == 0 {
		fix = append(fix, advice("spread receive work: more NIC queues (ethtool -L IF combined N), RPS (rps_cpus), or irqbalance"))
	}
	return fix
}

// allCPUMask is the hex mask of cpus CPUs, as rps_cpus takes it.
func allCPUMask(cpus int) string {
	if cpus <= 0 {
		return "f"
	}
	if cpus >= 64 {
		return "ffffffffffffffff"
	}
	return fmt.Sprintf("%x", uint64(1)<<uint(cpus)-1)
}
