package counters

// Queueing-discipline counters: struct gnet_stats_queue
// (include/uapi/linux/gen_stats.h) from the TCA_STATS2/TCA_STATS_QUEUE
// attribute of an RTM_GETQDISC dump, or from the older struct tc_stats in
// TCA_STATS (include/uapi/linux/pkt_sched.h). These are the numbers
// `tc -s qdisc show` prints as "dropped", "overlimits", "requeues" and
// "backlog Nb Np". The event counters are __u32 in both structs and wrap.

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"

	"github.com/netdrop/netdrop/stage"
)

// QdiscSource is the Source of qdisc counters.
const QdiscSource = "netlink qdisc"

func init() { register(qdiscSource{}) }

// qdiscSource reads the statistics of every qdisc of every interface in the
// namespace of the calling thread.
type qdiscSource struct{}

func (qdiscSource) Name() string { return QdiscSource }

func (qdiscSource) Collect(ctx context.Context, _ FS, s *Snapshot) error {
	links, err := snapshotLinks(ctx)
	if err != nil {
		return err
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Index] = l.Name
	}
	// A nil link dumps the qdiscs of every interface in one request. The
	// package-level function uses a handle without cached sockets, so the
	// socket is opened here, in the calling thread's namespace.
	qs, err := netlink.QdiscList(nil)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("rtm_getqdisc dump: %w", err)
	}
	s.Add(qdiscCounters(names, qs)...)
	return nil
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
		stg := stage.ID("")
		if a.Parent == netlink.HANDLE_ROOT || a.Parent == netlink.HANDLE_INGRESS {
			stg = stage.Qdisc
		}
		out = append(out,
			Counter{Source: QdiscSource, Object: obj, Field: "drops", Value: uint64(st.Drops), Stage: stg, Bits: 32},
			Counter{Source: QdiscSource, Object: obj, Field: "overlimits", Value: uint64(st.Overlimits), Stage: stg, Bits: 32},
			Counter{Source: QdiscSource, Object: obj, Field: "requeues", Value: uint64(st.Requeues), Stage: stg, Bits: 32},
			Counter{Source: QdiscSource, Object: obj, Field: "backlog", Value: uint64(st.Backlog), Stage: stg, Gauge: true},
			Counter{Source: QdiscSource, Object: obj, Field: "qlen", Value: uint64(st.Qlen), Stage: stg, Gauge: true},
		)
	}
	return out
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
