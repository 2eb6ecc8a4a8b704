package counters

// The classes of htb qdiscs: per class, the drops and overlimits that `tc -s
// class show` prints, and the class's rate and ceil. A root htb counts the
// drops of all its classes together; the classes say which one overflowed,
// and at which configured rate.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// htbClass is one class of an htb qdisc as RTM_NEWTCLASS reports it.
type htbClass struct {
	LinkIndex int
	// Handle is the classid ("1:10"), Parent the parent class or qdisc.
	Handle, Parent uint32
	// Drops and Overlimits are the class's: packets its leaf queue
	// refused, and times it was held back over its rate.
	Drops, Overlimits uint32
	// Rate and Ceil are in bytes per second (TCA_HTB_PARMS, or
	// TCA_HTB_RATE64 / TCA_HTB_CEIL64 above 4 GB/s).
	Rate, Ceil uint64
}

// dumpHTBClasses lists the classes of every interface that has an htb
// qdisc in qs: the kernel dumps classes one interface at a time
// (tc_dump_tclass needs tcm_ifindex). Interfaces without htb cost nothing.
func dumpHTBClasses(dial dialer, qs []netlink.Qdisc) ([]htbClass, error) {
	seen := map[int]bool{}
	var out []htbClass
	var errs []error
	for _, q := range qs {
		a := q.Attrs()
		if q.Type() != "htb" || seen[a.LinkIndex] {
			continue
		}
		seen[a.LinkIndex] = true
		req := (&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(a.LinkIndex)}).Serialize()
		err := netlinkDump(dial, unix.NETLINK_ROUTE, unix.RTM_GETTCLASS, req, func(typ uint16, m []byte) error {
			if typ != unix.RTM_NEWTCLASS {
				return nil
			}
			c, ok, err := parseClassMessage(m)
			if err != nil || !ok {
				return err
			}
			out = append(out, c)
			return nil
		})
		if err != nil && !errors.Is(err, errDumpInterrupted) {
			errs = append(errs, fmt.Errorf("rtm_gettclass ifindex %d: %w", a.LinkIndex, err))
		}
	}
	return out, errors.Join(errs...)
}

// parseClassMessage decodes one RTM_NEWTCLASS message (struct tcmsg, then
// TCA_* attributes); ok is false for classes of other kinds than htb.
func parseClassMessage(m []byte) (htbClass, bool, error) {
	if len(m) < nl.SizeofTcMsg {
		return htbClass{}, false, fmt.Errorf("%w: rtm_newtclass: %d bytes, shorter than tcmsg", ErrFileParse, len(m))
	}
	hdr := nl.DeserializeTcMsg(m)
	var buf [12]rtAttr
	attrs, err := appendRtAttrs(buf[:0], m[nl.SizeofTcMsg:])
	if err != nil {
		return htbClass{}, false, fmt.Errorf("%w: rtm_newtclass attributes: %w", ErrFileParse, err)
	}
	c := htbClass{LinkIndex: int(hdr.Ifindex), Handle: hdr.Handle, Parent: hdr.Parent}
	kind := ""
	for _, a := range attrs {
		switch a.Type {
		case nl.TCA_KIND:
			kind = cString(a.Value)
		case nl.TCA_STATS2:
			var nbuf [8]rtAttr
			nested, err := appendRtAttrs(nbuf[:0], a.Value)
			if err != nil {
				return htbClass{}, false, fmt.Errorf("%w: class tca_stats2: %w", ErrFileParse, err)
			}
			for _, n := range nested {
				if n.Type != nl.TCA_STATS_QUEUE {
					continue
				}
				// struct gnet_stats_queue: qlen, backlog, drops,
				// requeues, overlimits.
				if len(n.Value) < 20 {
					return htbClass{}, false, fmt.Errorf("%w: class tca_stats_queue: %d bytes, want 20", ErrFileParse, len(n.Value))
				}
				c.Drops = binary.NativeEndian.Uint32(n.Value[8:])
				c.Overlimits = binary.NativeEndian.Uint32(n.Value[16:])
			}
		case nl.TCA_OPTIONS:
			var obuf [8]rtAttr
			opts, err := appendRtAttrs(obuf[:0], a.Value)
			if err != nil {
				return htbClass{}, false, fmt.Errorf("%w: htb class options: %w", ErrFileParse, err)
			}
			for _, o := range opts {
				switch o.Type {
				case nl.TCA_HTB_PARMS:
					// struct tc_htb_opt: rate and ceil (struct
					// tc_ratespec, rate at byte 8 of each), then
					// buffer, cbuffer, quantum, level, prio.
					if len(o.Value) < 24 {
						return htbClass{}, false, fmt.Errorf("%w: tca_htb_parms: %d bytes, want 24", ErrFileParse, len(o.Value))
					}
					if c.Rate == 0 {
						c.Rate = uint64(binary.NativeEndian.Uint32(o.Value[8:]))
					}
					if c.Ceil == 0 {
						c.Ceil = uint64(binary.NativeEndian.Uint32(o.Value[20:]))
					}
				case nl.TCA_HTB_RATE64:
					if len(o.Value) >= 8 {
						c.Rate = binary.NativeEndian.Uint64(o.Value)
					}
				case nl.TCA_HTB_CEIL64:
					if len(o.Value) >= 8 {
						c.Ceil = binary.NativeEndian.Uint64(o.Value)
					}
				}
			}
		}
	}
	return c, kind == "htb", nil
}

// classCounters turns htb classes into counters named as tc prints the
// class: "veth0 htb class 1:10". They carry no stage: the root htb's drops
// already count every class's, so a class is context that says which one
// dropped, never a second count.
func classCounters(names map[int]string, cs []htbClass) []Counter {
	out := make([]Counter, 0, 4*len(cs))
	for _, c := range cs {
		ifname, ok := names[c.LinkIndex]
		if !ok {
			ifname = "ifindex" + strconv.Itoa(c.LinkIndex)
		}
		obj := ifname + " htb class " + tcHandle(c.Handle)
		out = append(out,
			Counter{Source: NetlinkQdisc, Object: obj, Field: "drops", Value: uint64(c.Drops), Bits: 32},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "overlimits", Value: uint64(c.Overlimits), Bits: 32},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "rate", Value: c.Rate, Gauge: true},
			Counter{Source: NetlinkQdisc, Object: obj, Field: "ceil", Value: c.Ceil, Gauge: true},
		)
	}
	return out
}
