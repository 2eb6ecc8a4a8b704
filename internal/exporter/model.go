package exporter

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/counters"
)

// The metric model. Every family holds one unit, so that sum() over a
// family means something: packets dropped are never added to events, CPU
// time is in seconds in its own family, and each kind of level (a queue's
// packets, a table's entries, a socket count) has a family of its own.
// Where node_exporter exports the same kernel counter, the family has the
// same name after the prefix (node_softnet_dropped_total is
// netdrop_softnet_dropped_total) and the same labels, so a dashboard built
// on one carries over to the other; docs/metrics.md lists the mapping.
//
// A counter from a source that has its own families but a field this table
// does not know (a newer kernel's column) falls back to the generic
// families by unit, so nothing the counters package reads is lost; a level
// with no family of its own is left out (see placeCounter), because a
// family of unrelated levels is exactly what invites a meaningless sum.

// family is one metric family of the counters collector.
type family struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	// scale converts the kernel's unit to the family's (USER_HZ ticks
	// to seconds); zero means 1.
	scale float64
}

// familySpec declares a family before its Desc is built.
type familySpec struct {
	name, help string
	gauge      bool
	labels     []string
	scale      float64
}

// genericLabels identify a kernel counter that has no family of its own:
// where it was read, the object and field as the kernel names them, the
// stage it is evidence for and whether it is host-wide.
var genericLabels = []string{"source", "object", "field", "stage", "scope"}

// Generic families, one per counters.Unit.
const (
	famKernelDrops     = "kernel_drops_total"
	famKernelEvents    = "kernel_events_total"
	famKernelNearDrops = "kernel_near_drops_total"
)

// fieldFamily maps one kernel field of a source to its family.
type fieldFamily struct {
	field string
	spec  familySpec
}

// linkFamilies map struct rtnl_link_stats64 (netlink) to node_exporter's
// netdev names. Where /proc/net/dev prints the field alone, the name is
// node_exporter's default one (receive_errs, transmit_drop, receive_fifo);
// fields /proc/net/dev folds into a sum keep node_exporter's detailed names
// (receive_crc_errors), and netdrop_network_receive_drop_total is that sum
// for rx_dropped and rx_missed_errors, as /proc/net/dev prints it. The
// stage label is the stage the field is evidence for on this device (a
// tunnel's receive errors are the tunnel stage, not the NIC's).
var linkFamilies = []fieldFamily{
	{"rx_packets", familySpec{name: "network_receive_packets_total", help: "Packets received by an interface (rx_packets)."}},
	{"tx_packets", familySpec{name: "network_transmit_packets_total", help: "Packets transmitted by an interface (tx_packets)."}},
	{"rx_errors", familySpec{name: "network_receive_errs_total", help: "Receive errors of an interface, all causes (rx_errors)."}},
	{"tx_errors", familySpec{name: "network_transmit_errs_total", help: "Transmit errors of an interface, all causes (tx_errors)."}},
	{"rx_dropped", familySpec{name: "network_receive_dropped_total", help: "Received packets the stack dropped after the driver handed them over: no protocol handler, backlog full, and drivers' own drops (rx_dropped)."}},
	{"tx_dropped", familySpec{name: "network_transmit_drop_total", help: "Packets dropped on transmit: driver queue full or no carrier (tx_dropped; /proc/net/dev's transmit drop)."}},
	{"rx_length_errors", familySpec{name: "network_receive_length_errors_total", help: "Frames received with a bad length (rx_length_errors)."}},
	{"rx_over_errors", familySpec{name: "network_receive_over_errors_total", help: "Receive ring overruns (rx_over_errors)."}},
	{"rx_crc_errors", familySpec{name: "network_receive_crc_errors_total", help: "Frames received with a bad CRC (rx_crc_errors); on a tunnel, a checksum flag mismatch."}},
	{"rx_frame_errors", familySpec{name: "network_receive_frame_errors_total", help: "Frames received misaligned (rx_frame_errors); on a tunnel, an ECN conflict."}},
	{"rx_fifo_errors", familySpec{name: "network_receive_fifo_total", help: "Receive FIFO overruns (rx_fifo_errors; /proc/net/dev's receive fifo)."}},
	{"rx_missed_errors", familySpec{name: "network_receive_missed_errors_total", help: "Packets the NIC missed for lack of receive buffers in the ring (rx_missed_errors)."}},
	{"tx_aborted_errors", familySpec{name: "network_transmit_aborted_errors_total", help: "Transmissions aborted (tx_aborted_errors)."}},
	{"tx_carrier_errors", familySpec{name: "network_transmit_carrier_errors_total", help: "Transmissions lost for lack of carrier (tx_carrier_errors)."}},
	{"tx_fifo_errors", familySpec{name: "network_transmit_fifo_total", help: "Transmit FIFO underruns (tx_fifo_errors; /proc/net/dev's transmit fifo)."}},
	{"rx_nohandler", familySpec{name: "network_receive_nohandler_total", help: "Packets dropped on inactive bonding or team slaves that deliver only exact matches (rx_nohandler)."}},
	{"rx_otherhost_dropped", familySpec{name: "network_receive_otherhost_dropped_total", help: "Frames addressed to another host's MAC dropped by IP receive (rx_otherhost_dropped)."}},
}

// famReceiveDrop is /proc/net/dev's receive drop column: rx_dropped plus
// rx_missed_errors (dev_seq_printf_stats in net/core/net-procfs.c).
const famReceiveDrop = "network_receive_drop_total"

var linkLabels = []string{"device", "stage"}

// softnetFamilies map /proc/net/softnet_stat's columns to node_exporter's
// softnet names, per CPU. input_qlen and process_qlen are left out: their
// sum is backlog_len.
var softnetFamilies = []fieldFamily{
	{"processed", familySpec{name: "softnet_processed_total", help: "Packets a CPU's NET_RX softirq processed."}},
	{"dropped", familySpec{name: "softnet_dropped_total", help: "Packets dropped because a CPU's backlog queue (netdev_max_backlog) was full."}},
	{"time_squeeze", familySpec{name: "softnet_times_squeezed_total", help: "Times NET_RX stopped with work left because netdev_budget or netdev_budget_usecs ran out."}},
	{"received_rps", familySpec{name: "softnet_received_rps_total", help: "Times a CPU was woken by an inter-processor interrupt to process packets steered to it (RPS)."}},
	{"flow_limit_count", familySpec{name: "softnet_flow_limit_count_total", help: "Packets dropped by the per-flow backlog limit (net.core.flow_limit_table_len)."}},
	{"backlog_len", familySpec{name: "softnet_backlog_len", gauge: true, help: "Packets waiting in a CPU's backlog queues now."}},
}

// skippedSoftnet are softnet_stat columns deliberately not exported.
var skippedSoftnet = map[string]bool{"input_qlen": true, "process_qlen": true}

// userHZ is the unit of /proc/stat's times: USER_HZ is 100 on every Linux
// architecture's user ABI, whatever the kernel's own HZ.
const userHZ = 100

// cpuFamily is node_exporter's node_cpu_seconds_total for the two modes
// packet processing shows in: hard interrupts and softirqs. /proc/stat's
// other columns (and netdrop's idle and total) are not packet evidence.
var cpuFamily = familySpec{name: "cpu_seconds_total", labels: []string{"cpu", "mode"}, scale: 1.0 / userHZ,
	help: "Seconds a CPU spent in hard interrupts (mode irq) and softirqs (mode softirq), from /proc/stat."}

var cpuModes = map[string]bool{"irq": true, "softirq": true}

// interruptsFamily is /proc/interrupts summed over CPUs: an IRQ line's
// count per CPU multiplies series by cores, and the imbalance it shows is
// diagnose's finding, not a dashboard's.
var interruptsFamily = familySpec{name: "interrupts_total", labels: []string{"irq", "devices"},
	help: "Interrupts of an IRQ line, summed over CPUs, from /proc/interrupts."}

// softirqsFamily is node_exporter's node_softirqs_functions_total for the
// network softirqs netdrop reads.
var softirqsFamily = familySpec{name: "softirqs_functions_total", labels: []string{"cpu", "type"},
	help: "Softirqs run per CPU by type (NET_RX, NET_TX), from /proc/softirqs."}

// qdiscFamilies map qdisc and htb class statistics to node_exporter's qdisc
// names where it has them (drops, overlimits, requeues, backlog,
// current_queue_length), and to one family per level otherwise.
var qdiscFamilies = []fieldFamily{
	{"drops", familySpec{name: "qdisc_drops_total", help: "Packets a qdisc or htb class dropped."}},
	{"overlimits", familySpec{name: "qdisc_overlimits_total", help: "Times a qdisc held a packet back for being over its rate or limit (not a drop)."}},
	{"requeues", familySpec{name: "qdisc_requeues_total", help: "Packets the driver refused and a qdisc queued again (not a drop)."}},
	{"drop_overlimit", familySpec{name: "qdisc_drop_overlimit_total", help: "Packets an fq_codel dropped because its queue held packet_limit packets."}},
	{"drop_overmemory", familySpec{name: "qdisc_drop_overmemory_total", help: "Packets an fq_codel dropped because its queue used memory_limit bytes."}},
	{"ecn_mark", familySpec{name: "qdisc_ecn_mark_total", help: "Packets an fq_codel marked ECN CE instead of dropping."}},
	{"new_flow_count", familySpec{name: "qdisc_new_flow_count_total", help: "Flows an fq_codel started tracking as new."}},
	{"qlen", familySpec{name: "qdisc_current_queue_length", gauge: true, help: "Packets queued in a qdisc now."}},
	{"backlog", familySpec{name: "qdisc_backlog", gauge: true, help: "Bytes queued in a qdisc now."}},
	{"rate", familySpec{name: "qdisc_rate_bytes_per_second", gauge: true, help: "A shaper's (tbf, htb class) configured rate."}},
	{"ceil", familySpec{name: "qdisc_ceil_bytes_per_second", gauge: true, help: "An htb class's ceiling: the rate it may borrow up to."}},
	{"burst", familySpec{name: "qdisc_burst_bytes", gauge: true, help: "A tbf's bucket size."}},
	{"limit", familySpec{name: "qdisc_limit_bytes", gauge: true, help: "A tbf's queue limit: what waits for tokens beyond it is dropped."}},
	{"packet_limit", familySpec{name: "qdisc_limit_packets", gauge: true, help: "An fq_codel's queue limit in packets."}},
	{"memory_limit", familySpec{name: "qdisc_memory_limit_bytes", gauge: true, help: "An fq_codel's memory limit."}},
	{"memory_usage", familySpec{name: "qdisc_memory_usage_bytes", gauge: true, help: "Memory an fq_codel's queued packets use now."}},
}

// qdiscLabels: the interface, the qdisc kind, its handle as tc prints it
// ("1:", "0: parent :3", "class 1:10" for an htb class), and the stage
// (qdisc for a root, tc-ingress for ingress and clsact, empty for children,
// whose drops the root already counts).
var qdiscLabels = []string{"device", "kind", "handle", "stage"}

// conntrackStatFamilies are /proc/net/stat/nf_conntrack's columns, summed
// over CPUs, under node_exporter's conntrack names (with _total, as they
// are counters). Its entries column is left out: netdrop_nf_conntrack_entries
// is the namespace's own count.
var conntrackStatFamilies = func() []fieldFamily {
	help := map[string]string{
		"found":          "Conntrack lookups that found an entry.",
		"invalid":        "Packets conntrack could not track (invalid state); rules matching ctstate INVALID drop them.",
		"ignore":         "Packets conntrack ignored (already tracked or untracked).",
		"insert":         "Entries inserted into the conntrack table.",
		"insert_failed":  "Entries that could not be inserted (a clash, or the table full): their packets are dropped.",
		"drop":           "Packets dropped because conntrack could not create an entry (table full, early drop failed).",
		"early_drop":     "Entries evicted to make room in a full table.",
		"icmp_error":     "ICMP errors conntrack could not relate to a tracked connection.",
		"expect_new":     "Expectations created (helpers such as ftp).",
		"expect_create":  "Expectations created by helpers.",
		"expect_delete":  "Expectations deleted.",
		"search_restart": "Table lookups restarted because a resize moved entries.",
		"new":            "Entries created (unconfirmed).",
		"delete":         "Entries deleted.",
		"clashres":       "Clashes resolved by merging with the existing entry.",
		"chainlength":    "Insertions refused because a hash chain was too long.",
	}
	var out []fieldFamily
	for _, f := range []string{"found", "invalid", "ignore", "insert", "insert_failed", "drop", "early_drop", "icmp_error",
		"expect_new", "expect_create", "expect_delete", "search_restart", "new", "delete", "clashres", "chainlength"} {
		out = append(out, fieldFamily{f, familySpec{name: "nf_conntrack_stat_" + f + "_total", help: help[f]}})
	}
	return out
}()

var skippedConntrackStat = map[string]bool{"entries": true}

// sockstatFamilies are /proc/net/sockstat{,6} under node_exporter's names
// (node_sockstat_TCP_inuse): each line and column a gauge of its own, since
// sockets in use, orphans and memory pages are different kinds.
var sockstatFamilies = func() []fieldFamily {
	help := map[string]string{
		"inuse":  "sockets in use",
		"orphan": "orphaned sockets (closed by the application, not yet by TCP)",
		"tw":     "sockets in TIME_WAIT",
		"alloc":  "sockets allocated",
		"mem":    "memory pages in use (compared with net.ipv4.*_mem)",
		"memory": "bytes of memory in use",
		"used":   "sockets in use, all protocols",
	}
	var out []fieldFamily
	for _, f := range []string{"TCP:inuse", "TCP:orphan", "TCP:tw", "TCP:alloc", "TCP:mem", "UDP:inuse", "UDP:mem",
		"UDPLITE:inuse", "RAW:inuse", "FRAG:inuse", "FRAG:memory", "sockets:used",
		"TCP6:inuse", "UDP6:inuse", "UDPLITE6:inuse", "RAW6:inuse", "FRAG6:inuse", "FRAG6:memory"} {
		proto, col, _ := strings.Cut(f, ":")
		out = append(out, fieldFamily{f, familySpec{name: "sockstat_" + proto + "_" + col, gauge: true,
			help: proto + " " + help[col] + ", from /proc/net/sockstat or sockstat6."}})
	}
	return out
}()

// neighborFamily is the neighbour tables' size; their other columns are
// counters in the generic families.
var neighborFamily = familySpec{name: "neighbor_entries", gauge: true, labels: []string{"table"},
	help: "Entries in a neighbour table now (table arp_cache: IPv4 ARP, ndisc_cache: IPv6 NDP), compared with gc_thresh3."}

// Levels left out on purpose: the SNMP MIB's constants and settings
// (Ip:DefaultTTL, Tcp:RtoMin) are not evidence of loss, and connections
// established are netdrop_sockets{state="established"}; the conntrack count
// and limit are netdrop_nf_conntrack_entries and _limit (conntrack.go).

// metricModel holds the families of the counters collector and places each
// counter in one.
type metricModel struct {
	fams map[string]*family
	// by source, the field → family name tables.
	link, softnet, qdisc, ctstat, sockstat map[string]string
}

func newModel() *metricModel {
	m := &metricModel{fams: map[string]*family{}}
	add := func(s familySpec) {
		typ := prometheus.CounterValue
		if s.gauge {
			typ = prometheus.GaugeValue
		}
		m.fams[s.name] = &family{desc: prometheus.NewDesc(namespace+"_"+s.name, s.help, s.labels, nil), typ: typ, scale: s.scale}
	}
	table := func(fs []fieldFamily, labels []string) map[string]string {
		t := map[string]string{}
		for _, f := range fs {
			f.spec.labels = labels
			add(f.spec)
			t[f.field] = f.spec.name
		}
		return t
	}
	add(familySpec{name: famKernelDrops, labels: genericLabels,
		help: "Packets the kernel dropped, by counter (source: where it was read; object: interface, CPU, table or rule; field: the kernel's name; stage: the packet path stage it is evidence for; scope: host for host-wide values, netns otherwise). Counters with a family of their own are not repeated here; netdrop_stage_drops_total counts each lost packet once per stage."})
	add(familySpec{name: famKernelEvents, labels: genericLabels,
		help: "Kernel events that are not packets lost (packets handled, retransmissions, failed neighbour resolutions, conntrack evictions); labels as for netdrop_kernel_drops_total."})
	add(familySpec{name: famKernelNearDrops, labels: genericLabels,
		help: "Times the kernel came close to dropping and did something costly instead (receive queue collapsed or pruned, SYN answered with a cookie); labels as for netdrop_kernel_drops_total."})
	m.link = table(linkFamilies, linkLabels)
	add(familySpec{name: famReceiveDrop, labels: []string{"device"},
		help: "Received packets dropped by an interface as /proc/net/dev counts them: rx_dropped plus rx_missed_errors."})
	m.softnet = table(softnetFamilies, []string{"cpu"})
	add(cpuFamily)
	add(interruptsFamily)
	add(softirqsFamily)
	m.qdisc = table(qdiscFamilies, qdiscLabels)
	m.ctstat = table(conntrackStatFamilies, nil)
	m.sockstat = table(sockstatFamilies, nil)
	add(neighborFamily)
	return m
}

func (m *metricModel) describe(ch chan<- *prometheus.Desc) {
	for _, f := range m.fams {
		ch <- f.desc
	}
}

// point is one value placed in a family.
type point struct {
	fam    *family
	labels []string
	value  float64
}

// genericFamily is the family of a counter by its unit, or nil for a level.
func (m *metricModel) genericFamily(k counters.Counter) string {
	switch k.Unit() {
	case counters.Drops:
		return famKernelDrops
	case counters.NearDrops:
		return famKernelNearDrops
	case counters.Events:
		return famKernelEvents
	}
	return ""
}

// place returns the family and labels of one counter, or false when it is
// left out (a skipped column, a level without a family of its own).
// Interrupts are summed over CPUs by the caller: place gives each cell the
// same labels.
func (m *metricModel) place(k counters.Counter) (point, bool) {
	v := float64(k.Value)
	named := func(name string, labels ...string) (point, bool) {
		f := m.fams[name]
		if f.scale != 0 {
			v *= f.scale
		}
		return point{f, labels, v}, true
	}
	switch k.Source {
	case counters.NetlinkLinkStats:
		if n, ok := m.link[k.Field]; ok {
			return named(n, k.Object, string(k.Stage))
		}
	case counters.ProcNetSoftnetStat:
		if skippedSoftnet[k.Field] {
			return point{}, false
		}
		if n, ok := m.softnet[k.Field]; ok {
			return named(n, cpuNumber(k.Object))
		}
	case counters.ProcStat:
		if !cpuModes[k.Field] {
			return point{}, false
		}
		return named(cpuFamily.name, cpuNumber(k.Object), k.Field)
	case counters.ProcInterrupts:
		irq, devices, _ := strings.Cut(k.Object, " ")
		return named(interruptsFamily.name, irq, devices)
	case counters.ProcSoftirqs:
		return named(softirqsFamily.name, cpuNumber(k.Object), k.Field)
	case counters.NetlinkQdisc:
		if n, ok := m.qdisc[k.Field]; ok {
			dev, kind, handle := qdiscParts(k.Object)
			return named(n, dev, kind, handle, string(k.Stage))
		}
	case counters.ProcNetStatConntrack:
		if skippedConntrackStat[k.Field] {
			return point{}, false
		}
		if n, ok := m.ctstat[k.Field]; ok {
			return named(n)
		}
	case counters.ProcNetSockstat, counters.ProcNetSockstat6:
		if n, ok := m.sockstat[k.Field]; ok {
			return named(n)
		}
	case counters.ProcNetStatARPCache, counters.ProcNetStatNDiscCache:
		if k.Field == "entries" {
			return named(neighborFamily.name, strings.TrimPrefix(string(k.Source), "/proc/net/stat/"))
		}
	}
	if k.Gauge {
		return point{}, false
	}
	scope := "netns"
	if k.HostWide {
		scope = "host"
	}
	return named(m.genericFamily(k), string(k.Source), k.Object, k.Field, string(k.Stage), scope)
}

// cpuNumber turns netdrop's "cpu3" into node_exporter's cpu="3".
func cpuNumber(obj string) string { return strings.TrimPrefix(obj, "cpu") }

// qdiscParts splits a qdisc object as counters names it ("veth0 tbf 1:",
// "eth0 fq_codel 0: parent :3", "veth0 htb class 1:10") into the
// interface, the kind and the rest.
func qdiscParts(obj string) (device, kind, handle string) {
	device, rest, _ := strings.Cut(obj, " ")
	kind, handle, _ = strings.Cut(rest, " ")
	return device, kind, handle
}
