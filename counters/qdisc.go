package counters

// Queueing-discipline counters: struct gnet_stats_queue
// (include/uapi/linux/gen_stats.h) from the TCA_STATS2/TCA_STATS_QUEUE
// attribute of an RTM_GETQDISC dump, or from the older struct tc_stats in
// TCA_STATS (include/uapi/linux/pkt_sched.h). These are the numbers
// `tc -s qdisc show` prints as "dropped", "overlimits", "requeues" and
// "backlog Nb Np". The event counters are __u32 in both structs and wrap.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

func init() { register(qdiscSource{}) }

// qdiscSource reads the statistics of every qdisc of every interface in the
// namespace of the calling thread.
type qdiscSource struct{}

func (qdiscSource) ID() SourceID { return NetlinkQdisc }

func (qdiscSource) Collect(ctx context.Context, r *Reading, s *Snapshot) error {
	links, err := r.linkDump()
	if err != nil {
		return err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Index] = l.Name
	}
	qs, err := r.qdiscDump()
	if err != nil {
		return err
	}
	s.Add(qdiscCounters(names, qs)...)
	classes, err := dumpHTBClasses(r.dialer(), qs)
	s.Add(classCounters(names, classes)...)
	return err
}

// dumpQdiscs lists the qdiscs of every interface of the calling thread's
// namespace in one RTM_GETQDISC dump, with netlinkDump; when a reply does
// not fit its buffer, with vishvananda/netlink's QdiscList (whose
// package-level function opens its socket in the calling thread too).
func dumpQdiscs(dial dialer) ([]netlink.Qdisc, error) {
	var qs []netlink.Qdisc
	err := netlinkDump(dial, unix.NETLINK_ROUTE, unix.RTM_GETQDISC, (&nl.TcMsg{Family: nl.FAMILY_ALL}).Serialize(), func(typ uint16, m []byte) error {
		if typ != unix.RTM_NEWQDISC {
			return nil
		}
		q, err := parseQdiscMessage(m)
		if err != nil {
			return err
		}
		qs = append(qs, q)
		return nil
	})
	switch {
	case errors.Is(err, errDumpTruncated):
		qs, err = netlink.QdiscList(nil)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("rtm_getqdisc dump: %w", err)
		}
	case err != nil && !errors.Is(err, errDumpInterrupted):
		return nil, fmt.Errorf("rtm_getqdisc dump: %w", err)
	}
	return qs, nil
}

// parseQdiscMessage decodes what qdiscCounters needs of one RTM_NEWQDISC
// message (struct tcmsg, then TCA_* attributes) into the type QdiscList
// returns: the kind as the qdisc's type, and the queue statistics of
// TCA_STATS2, falling back to TCA_STATS. The kernel sends TCA_STATS, the old
// struct tc_stats without requeues, after TCA_STATS2
// (gnet_stats_finish_copy); QdiscList keeps the last one and so always
// reads requeues as 0, which tc -s does not.
func parseQdiscMessage(m []byte) (netlink.Qdisc, error) {
	if len(m) < nl.SizeofTcMsg {
		return nil, fmt.Errorf("%w: rtm_newqdisc: %d bytes, shorter than tcmsg", ErrFileParse, len(m))
	}
	hdr := nl.DeserializeTcMsg(m)
	var buf [16]rtAttr
	attrs, err := appendRtAttrs(buf[:0], m[nl.SizeofTcMsg:])
	if err != nil {
		return nil, fmt.Errorf("%w: rtm_newqdisc attributes: %w", ErrFileParse, err)
	}
	q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: int(hdr.Ifindex), Handle: hdr.Handle, Parent: hdr.Parent, Refcnt: hdr.Info,
	}}
	var opts, app []byte
	u32 := func(b []byte, off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	for _, a := range attrs {
		switch a.Type {
		case nl.TCA_KIND:
			if len(a.Value) > 0 {
				q.QdiscType = string(a.Value[:len(a.Value)-1])
			}
		case nl.TCA_STATS:
			// struct tc_stats: bytes (u64), packets, drops,
			// overlimits, bps, pps, qlen, backlog (u32).
			if len(a.Value) < 36 {
				return nil, fmt.Errorf("%w: tca_stats: %d bytes, want 36", ErrFileParse, len(a.Value))
			}
			if q.Statistics != nil {
				break // TCA_STATS2 came first and also has requeues
			}
			v := a.Value
			q.Statistics = &netlink.QdiscStatistics{Queue: &netlink.GnetStatsQueue{
				Qlen: u32(v, 28), Backlog: u32(v, 32), Drops: u32(v, 12), Overlimits: u32(v, 16),
			}}
		case nl.TCA_STATS2:
			var nbuf [8]rtAttr
			nested, err := appendRtAttrs(nbuf[:0], a.Value)
			if err != nil {
				return nil, fmt.Errorf("%w: tca_stats2: %w", ErrFileParse, err)
			}
			st := &netlink.QdiscStatistics{Queue: &netlink.GnetStatsQueue{}}
			for _, n := range nested {
				if n.Type == nl.TCA_STATS_APP {
					app = n.Value
				}
				if n.Type != nl.TCA_STATS_QUEUE {
					continue
				}
				// struct gnet_stats_queue: qlen, backlog, drops,
				// requeues, overlimits (u32).
				if len(n.Value) < 20 {
					return nil, fmt.Errorf("%w: tca_stats_queue: %d bytes, want 20", ErrFileParse, len(n.Value))
				}
				v := n.Value
				*st.Queue = netlink.GnetStatsQueue{
					Qlen: u32(v, 0), Backlog: u32(v, 4), Drops: u32(v, 8), Requeues: u32(v, 12), Overlimits: u32(v, 16),
				}
			}
			q.Statistics = st
		case nl.TCA_OPTIONS:
			opts = a.Value
		}
	}
	switch q.QdiscType {
	case "tbf":
		if opts == nil {
			break
		}
		tbf, err := parseTbfOptions(opts)
		if err != nil {
			return nil, err
		}
		tbf.QdiscAttrs = q.QdiscAttrs
		return tbf, nil
	case "fq_codel":
		fq, err := parseFqCodel(opts, app)
		if err != nil {
			return nil, err
		}
		fq.QdiscAttrs = q.QdiscAttrs
		return fq, nil
	}
	return q, nil
}

// fqCodel is an fq_codel qdisc with what netlink.FqCodel lacks: the
// qdisc's extended statistics (struct tc_fq_codel_qd_stats), which tell
// a queue that hit its limit from CoDel dropping packets that waited too
// long.
type fqCodel struct {
	netlink.FqCodel
	// XStats is nil when the kernel sent none.
	XStats *fqCodelXStats
}

// fqCodelXStats is struct tc_fq_codel_qd_stats
// (include/uapi/linux/pkt_sched.h).
type fqCodelXStats struct {
	MaxPacket, DropOverlimit, ECNMark, NewFlowCount, NewFlowsLen, OldFlowsLen, CEMark, MemoryUsage, DropOvermemory uint32
}

// parseFqCodel reads an fq_codel's TCA_OPTIONS (limit in packets, memory
// limit in bytes) and its TCA_STATS_APP: struct tc_fq_codel_xstats, a type
// word (TCA_FQ_CODEL_XSTATS_QDISC, 0) then the qdisc's statistics.
func parseFqCodel(opts, app []byte) (*fqCodel, error) {
	fq := &fqCodel{}
	if opts != nil {
		var buf [12]rtAttr
		attrs, err := appendRtAttrs(buf[:0], opts)
		if err != nil {
			return nil, fmt.Errorf("%w: fq_codel options: %w", ErrFileParse, err)
		}
		for _, a := range attrs {
			if len(a.Value) < 4 {
				continue
			}
			switch a.Type {
			case nl.TCA_FQ_CODEL_LIMIT:
				fq.Limit = binary.NativeEndian.Uint32(a.Value)
			case nl.TCA_FQ_CODEL_MEMORY_LIMIT:
				fq.MemoryLimit = binary.NativeEndian.Uint32(a.Value)
			}
		}
	}
	if len(app) >= 4 && binary.NativeEndian.Uint32(app) == 0 {
		if len(app) < 40 {
			return nil, fmt.Errorf("%w: tc_fq_codel_xstats: %d bytes, want 40", ErrFileParse, len(app))
		}
		u := func(i int) uint32 { return binary.NativeEndian.Uint32(app[4+4*i:]) }
		fq.XStats = &fqCodelXStats{
			MaxPacket: u(0), DropOverlimit: u(1), ECNMark: u(2), NewFlowCount: u(3), NewFlowsLen: u(4),
			OldFlowsLen: u(5), CEMark: u(6), MemoryUsage: u(7), DropOvermemory: u(8),
		}
	}
	return fq, nil
}

// parseTbfOptions reads a tbf qdisc's TCA_OPTIONS (TCA_TBF_PARMS: struct
// tc_tbf_qopt, two struct tc_ratespec of 12 bytes each, then limit,
// buffer and mtu; TCA_TBF_RATE64 for rates above 4 GB/s) as QdiscList
// would: rate in bytes per second, limit in bytes, buffer in psched ticks.
func parseTbfOptions(b []byte) (*netlink.Tbf, error) {
	var buf [8]rtAttr
	attrs, err := appendRtAttrs(buf[:0], b)
	if err != nil {
		return nil, fmt.Errorf("%w: tbf options: %w", ErrFileParse, err)
	}
	t := &netlink.Tbf{}
	for _, a := range attrs {
		switch a.Type {
		case nl.TCA_TBF_PARMS:
			if len(a.Value) < 36 {
				return nil, fmt.Errorf("%w: tca_tbf_parms: %d bytes, want 36", ErrFileParse, len(a.Value))
			}
			t.Rate = uint64(binary.NativeEndian.Uint32(a.Value[8:]))
			t.Limit = binary.NativeEndian.Uint32(a.Value[24:])
			t.Buffer = binary.NativeEndian.Uint32(a.Value[28:])
		case nl.TCA_TBF_RATE64:
			if len(a.Value) >= 8 {
				t.Rate = binary.NativeEndian.Uint64(a.Value)
			}
		}
	}
	return t, nil
}

// qdiscCounters turns decoded qdiscs into counters. names maps ifindex to
// interface name; a qdisc of an unknown ifindex (the link went away between
// the two dumps) is named by its index.
func qdiscCounters(names map[int]string, qs []netlink.Qdisc) []Counter {
	var out []Counter
	for _, q := range qs {
		a := q.Attrs()
		if a == nil || a.Statistics == nil || a.Statistics.Queue == nil {
			continue
		}
		ifname, ok := names[a.LinkIndex]
		if !ok {
			ifname = "ifindex" + strconv.Itoa(a.LinkIndex)
		}
		obj := qdiscObject(ifname, q.Type(), a.Handle, a.Parent)
		st := a.Statistics.Queue
		// Only the top of each tree is evidence for the qdisc stage:
		// a classful parent (htb, prio, drr, …) adds every drop of its
		// children to its own count (on enqueue, and through
		// qdisc_tree_reduce_backlog for drops on dequeue), and mq/mqprio
		// report the sum of their per-queue children. Children are kept
		// as context so the user can see which leaf dropped, without a
		// drop being counted twice.
		//
		// The ingress and clsact qdiscs (parent ffff:fff1) queue nothing:
		// their "dropped" counts the TC_ACT_SHOT verdicts of the filters
		// and actions attached to them (mini_qdisc_qstats_cpu_drop in
		// tc_run), on the receive side — and for clsact also its egress
		// hook. They are the tc-ingress stage, never the transmit queue:
		// a bigger egress queue cannot help a filter that drops.
		stg := stage.ID("")
		switch a.Parent {
		case netlink.HANDLE_ROOT:
			stg = stage.Qdisc
		case netlink.HANDLE_INGRESS:
			stg = stage.TCIngress
		}
		out = append(out,
			Counter{Source: NetlinkQdisc, Object: obj, Field: "drops", Value: uint64(st.Drops), Stage: stg, Bits: 32},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "overlimits", Value: uint64(st.Overlimits), Stage: stg, Bits: 32},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "requeues", Value: uint64(st.Requeues), Stage: stg, Bits: 32},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "backlog", Value: uint64(st.Backlog), Stage: stg, Gauge: true},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "qlen", Value: uint64(st.Qlen), Stage: stg, Gauge: true},
		)
		// A shaper's settings, so that a fix can say what to raise
		// from what: tc prints them as rate, burst and limit.
		if t, ok := q.(*netlink.Tbf); ok && t.Rate > 0 {
			out = append(out,
				Counter{Source: NetlinkQdisc, Object: obj, Field: "rate", Value: t.Rate, Gauge: true},
				Counter{Source: NetlinkQdisc, Object: obj, Field: "burst", Value: tbfBurst(t.Rate, t.Buffer), Gauge: true},
				Counter{Source: NetlinkQdisc, Object: obj, Field: "limit", Value: uint64(t.Limit), Gauge: true},
			)
		}
		// fq_codel's own account of its drops: a full queue
		// (drop_overlimit, drop_overmemory) or CoDel's dropping of
		// packets that waited longer than its target (the rest).
		// Context only: "drops" already counts them all.
		// QdiscList (the fallback for an oversized dump) gives the
		// options without the statistics.
		var fq *fqCodel
		switch v := q.(type) {
		case *fqCodel:
			fq = v
		case *netlink.FqCodel:
			fq = &fqCodel{FqCodel: *v}
		}
		if fq != nil {
			if fq.Limit > 0 {
				out = append(out, Counter{Source: NetlinkQdisc, Object: obj, Field: "packet_limit", Value: uint64(fq.Limit), Gauge: true})
			}
			if fq.MemoryLimit > 0 {
				out = append(out, Counter{Source: NetlinkQdisc, Object: obj, Field: "memory_limit", Value: uint64(fq.MemoryLimit), Gauge: true})
			}
			if x := fq.XStats; x != nil {
				out = append(out,
					Counter{Source: NetlinkQdisc, Object: obj, Field: "drop_overlimit", Value: uint64(x.DropOverlimit), Bits: 32},
					Counter{Source: NetlinkQdisc, Object: obj, Field: "drop_overmemory", Value: uint64(x.DropOvermemory), Bits: 32},
					Counter{Source: NetlinkQdisc, Object: obj, Field: "ecn_mark", Value: uint64(x.ECNMark), Bits: 32},
					Counter{Source: NetlinkQdisc, Object: obj, Field: "new_flow_count", Value: uint64(x.NewFlowCount), Bits: 32},
					Counter{Source: NetlinkQdisc, Object: obj, Field: "memory_usage", Value: uint64(x.MemoryUsage), Gauge: true},
				)
			}
		}
	}
	return out
}

// tbfBurst is the bucket size in bytes: the kernel reports it as the time
// the bucket takes to fill at the rate, in psched ticks of 64 ns
// (PSCHED_NS2TICKS in include/net/pkt_sched.h). tc rounds the ticks down
// when it sets them, so the bytes are rounded up here to give back what was
// configured; the product is taken in 128 bits (rates up to 2^64 bytes/s).
func tbfBurst(rate uint64, ticks uint32) uint64 {
	hi, lo := bits.Mul64(rate, uint64(ticks)*64)
	lo, carry := bits.Add64(lo, 1e9-1, 0)
	hi += carry
	if hi >= 1e9 {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, 1e9)
	return q
}

// qdiscObject names a qdisc as tc prints it: "veth0 tbf 1:". Qdiscs with
// handle 0 (the per-queue children of mq, noqueue) are not unique on their
// interface, so their parent is added as tc prints it: "eth0 fq_codel 0:
// parent :3".
func qdiscObject(ifname, kind string, handle, parent uint32) string {
	obj := fmt.Sprintf("%s %s %x:", ifname, kind, handle>>16)
	if handle>>16 == 0 && parent != netlink.HANDLE_ROOT {
		obj += " parent " + tcHandle(parent)
	}
	return obj
}

// tcHandle prints a class or parent handle the way tc does
// (iproute2's sprint_tc_handle): "root", "none", ":3", "1:", "1:10".
func tcHandle(h uint32) string {
	switch h {
	case netlink.HANDLE_ROOT:
		return "root"
	case netlink.HANDLE_NONE:
		return "none"
	}
	major, minor := h>>16, h&0xffff
	switch {
	case major == 0:
		return fmt.Sprintf(":%x", minor)
	case minor == 0:
		return fmt.Sprintf("%x:", major)
	default:
		return fmt.Sprintf("%x:%x", major, minor)
	}
}
