// Package droptrace counts packet drops at the kernel's skb:kfree_skb
// tracepoint with eBPF: per drop reason, freeing function (symbol+offset),
// network namespace, interface and protocol, aggregated in the kernel so
// that a drop storm costs one hash-map update per packet and user space
// reads a few rows per interval. Each row is mapped to a stage of the packet
// path (see Classify). Optionally it keeps kernel stacks, top 5-tuples per
// row, and a stream of single events whose losses are counted.
//
// Reason names come from the running kernel (BTF, else the tracefs format
// file), never from a table compiled in here, because their values move
// between kernels. The program attaches as tp_btf where the kernel has BTF,
// else as a classic tracepoint whose record offsets are read from tracefs.
// Nothing is pinned: closing the Tracer, or the process dying, removes
// every program, map and link.
//
// droptrace does not decide what a drop means for the host (diagnose does)
// and does not print (internal/cli does).
package droptrace

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/netdrop/netdrop/stage"
)

// ErrNotSupported means this kernel (or OS) cannot run the tracer: no
// skb:kfree_skb tracepoint reachable through BTF or tracefs.
var ErrNotSupported = errors.New("drop tracing not supported")

// ErrPermission means the process lacks the privileges to load and attach
// BPF programs. CAP_SYSLOG is named too: without it (and with the default
// kernel.perf_event_paranoid=2) /proc/kallsyms hides the addresses that name
// drop locations, and KernelSymbols says so in its own words.
var ErrPermission = errors.New("trace needs root, or CAP_BPF, CAP_PERFMON and CAP_SYSLOG")

// Options selects what the tracer counts. Filters are applied in the kernel
// so filtered-out drops cost a few loads, not a map update.
type Options struct {
	// Netns keeps drops in one network namespace: a name under /run/netns,
	// a path, or pid:N. Empty: every namespace.
	Netns string
	// Proto keeps one transport: "udp", "tcp" or "icmp" (ICMP and ICMPv6).
	Proto string
	// Port keeps TCP/UDP drops whose source or destination port is Port.
	Port uint16
	// Host keeps drops whose source or destination address is Host.
	Host netip.Addr
	// Reason keeps one drop reason, by name (NETFILTER_DROP) or value.
	Reason string
	// Stacks samples kernel stacks per row: the first 8 drops of each row
	// on each CPU, then one in 1024, because walking a stack costs more
	// than everything else the tracer does. Row counts stay exact.
	Stacks bool
	// Flows counts 5-tuples per row; Snapshot returns the top FlowsPerRow.
	Flows       bool
	FlowsPerRow int
	// Events streams every drop through a ring buffer to Tracer.Events.
	// What the ring cannot take is counted in Snapshot.LostEvents.
	Events bool
	// RingSize is the ring buffer size in bytes (power of two, default 4 MiB).
	RingSize int
	// Attach forces "tp_btf" or "tracepoint"; "" or "auto" picks tp_btf
	// when the kernel has BTF.
	Attach string
	// Tracefs is the tracefs mount, default /sys/kernel/tracing (then
	// /sys/kernel/debug/tracing).
	Tracefs string
}

// Row is one aggregate: how many drops with one (reason, location, netns,
// interface, protocol[, stack]) since the tracer started (or within an
// interval, after Delta).
type Row struct {
	Count      uint64   `json:"count"`
	Reason     string   `json:"reason"`
	ReasonCode uint32   `json:"reason_code"`
	Location   string   `json:"location"`
	Function   string   `json:"function"`
	Stage      stage.ID `json:"stage,omitempty"`
	AltStage   stage.ID `json:"alt_stage,omitempty"`
	Noise      bool     `json:"noise,omitempty"`
	// Class is the reason's place: "stage", "noise", or "policy" and
	// "other" for drops outside the stages (shown with their reason).
	Class    ReasonClass `json:"class,omitempty"`
	Netns    uint32      `json:"netns"`
	Ifindex  uint32      `json:"ifindex,omitempty"`
	Ifname   string      `json:"ifname,omitempty"`
	Protocol string      `json:"protocol,omitempty"`
	L4       string      `json:"l4,omitempty"`
	Stacks   []Stack     `json:"stacks,omitempty"`
	Flows    []Flow      `json:"flows,omitempty"`

	key rowKey
}

// rowKey identifies a row across snapshots (the BPF map key).
type rowKey struct {
	location uint64
	reason   uint32
	netns    uint32
	ifindex  uint32
	stackID  int32
	protocol uint16
	l4proto  uint8
}

// Stack is one kernel stack seen in a row, innermost frame first, with the
// number of times it was sampled.
type Stack struct {
	ID      int32    `json:"id"`
	Samples uint64   `json:"samples"`
	Frames  []string `json:"frames"`
}

// Flow is one 5-tuple seen in a row. For ICMP the ports are the type and
// code.
type Flow struct {
	Proto string `json:"proto"`
	Src   string `json:"src"`
	Dst   string `json:"dst"`
	// ICMP is "type T code C" for ICMP and ICMPv6 flows.
	ICMP  string `json:"icmp,omitempty"`
	Count uint64 `json:"count"`
}

// Snapshot is the tracer's state at one moment.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Rows are drops, most first; Noise are frees that are not loss.
	Rows  []Row `json:"rows"`
	Noise []Row `json:"noise,omitempty"`
	// LostEvents counts drops the event ring buffer could not take (only
	// with Options.Events); they are still counted in Rows.
	LostEvents uint64 `json:"lost_events"`
	// Unattributed counts drops not in any row because the aggregation map
	// was full; FlowOverflow the same for flows.
	Unattributed uint64 `json:"unattributed"`
	FlowOverflow uint64 `json:"flow_overflow,omitempty"`
	// StackErrors counts drops whose stack could not be stored; they are in
	// rows with a negative stack id.
	StackErrors uint64 `json:"stack_errors,omitempty"`
}

// Drops is the number of drops in s, noise excluded, unattributed included.
func (s Snapshot) Drops() uint64 {
	var n uint64
	for _, r := range s.Rows {
		n += r.Count
	}
	return n + s.Unattributed
}

// Count sums the rows matching keep.
func (s Snapshot) Count(keep func(Row) bool) uint64 {
	var n uint64
	for _, r := range append(append([]Row(nil), s.Rows...), s.Noise...) {
		if keep(r) {
			n += r.Count
		}
	}
	return n
}

// Delta returns what happened between prev and cur: counts subtracted per
// row and per flow; rows without drops in between are left out. The kernel
// counters only grow, so reading them twice never races with the kernel.
func Delta(prev, cur Snapshot) Snapshot {
	old := map[rowKey]Row{}
	for _, r := range append(append([]Row(nil), prev.Rows...), prev.Noise...) {
		old[r.key] = r
	}
	sub := func(rows []Row) []Row {
		var out []Row
		for _, r := range rows {
			p := old[r.key]
			if r.Count <= p.Count {
				continue
			}
			r.Count -= p.Count
			r.Flows = deltaFlows(p.Flows, r.Flows)
			r.Stacks = deltaStacks(p.Stacks, r.Stacks)
			out = append(out, r)
		}
		sortRows(out)
		return out
	}
	d := cur
	d.Rows = sub(cur.Rows)
	d.Noise = sub(cur.Noise)
	d.LostEvents = cur.LostEvents - min(prev.LostEvents, cur.LostEvents)
	d.Unattributed = cur.Unattributed - min(prev.Unattributed, cur.Unattributed)
	d.FlowOverflow = cur.FlowOverflow - min(prev.FlowOverflow, cur.FlowOverflow)
	d.StackErrors = cur.StackErrors - min(prev.StackErrors, cur.StackErrors)
	return d
}

func deltaStacks(prev, cur []Stack) []Stack {
	old := map[int32]uint64{}
	for _, s := range prev {
		old[s.ID] = s.Samples
	}
	var out []Stack
	for _, s := range cur {
		if n := old[s.ID]; n < s.Samples {
			s.Samples -= n
			out = append(out, s)
		}
	}
	sortStacks(out)
	return out
}

func sortStacks(s []Stack) {
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Samples != s[j].Samples {
			return s[i].Samples > s[j].Samples
		}
		return s[i].ID < s[j].ID
	})
}

func deltaFlows(prev, cur []Flow) []Flow {
	if len(cur) == 0 {
		return nil
	}
	type fk struct{ p, s, d, i string }
	old := map[fk]uint64{}
	for _, f := range prev {
		old[fk{f.Proto, f.Src, f.Dst, f.ICMP}] = f.Count
	}
	var out []Flow
	for _, f := range cur {
		if n := old[fk{f.Proto, f.Src, f.Dst, f.ICMP}]; n < f.Count {
			f.Count -= n
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Count > out[j].Count })
	return out
}

// sortRows orders by count, then by reason and location so that output is
// stable between intervals.
func sortRows(rows []Row) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Reason != b.Reason {
			return a.Reason < b.Reason
		}
		return a.Location < b.Location
	})
}

// ethertypeName names the ethertypes a drop row usually carries.
func ethertypeName(p uint16) string {
	switch p {
	case 0:
		return ""
	case 0x0800:
		return "ipv4"
	case 0x86dd:
		return "ipv6"
	case 0x0806:
		return "arp"
	case 0x8100:
		return "vlan"
	default:
		return "0x" + strconv.FormatUint(uint64(p), 16)
	}
}

// l4Name names IP protocol numbers.
func l4Name(p uint8) string {
	switch p {
	case 0:
		return ""
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	default:
		return strconv.Itoa(int(p))
	}
}

// protoNumber parses Options.Proto.
func protoNumber(s string) (uint8, error) {
	switch s {
	case "":
		return 0, nil
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp", "icmpv6":
		return 1, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want udp, tcp or icmp)", s)
}

// TopFlows trims every row's flows to the n largest, for display.
func TopFlows(s Snapshot, n int) Snapshot {
	trim := func(rows []Row) []Row {
		out := make([]Row, len(rows))
		for i, r := range rows {
			if len(r.Flows) > n {
				r.Flows = r.Flows[:n]
			}
			out[i] = r
		}
		return out
	}
	s.Rows, s.Noise = trim(s.Rows), trim(s.Noise)
	return s
}

// Event is one drop streamed with Options.Events.
type Event struct {
	// Time is the wall-clock time of the drop, from the kernel's
	// CLOCK_MONOTONIC stamp (Ktime) and the boot time seen at Start.
	Time  time.Time     `json:"time"`
	Ktime time.Duration `json:"ktime_ns"`
	CPU   uint32        `json:"cpu"`
	Row   Row           `json:"drop"`
	Flow  *Flow         `json:"flow,omitempty"`
}

// Info says how the tracer attached, for users and tests.
type Info struct {
	Attach       string // "tp_btf" or "tracepoint"
	ReasonSource string // "btf", "tracefs" or "" (kernel without reasons)
	ProgramID    uint32
	LinkID       uint32
	MapIDs       []uint32
}
