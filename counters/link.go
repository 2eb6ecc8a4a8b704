package counters

// Per-interface counters from the kernel's struct rtnl_link_stats64
// (include/uapi/linux/if_link.h), read from the IFLA_STATS64 attribute of an
// RTM_GETLINK dump. This is what `ip -s link` prints and what
// /sys/class/net/IF/statistics/* shows, but netlink answers for the network
// namespace of the socket, while sysfs keeps showing the namespace it was
// mounted in: a thread that entered another namespace with setns still sees
// the host's interfaces under /sys/class/net.
//
// vishvananda/netlink's LinkList decodes IFLA_STATS64 into a struct that stops
// at tx_compressed, so it drops rx_nohandler (4.6) and rx_otherhost_dropped
// (6.0), and it fails on kernels whose struct is shorter than its own. The dump
// below uses the same library's request code but decodes the attributes
// itself, by length, so every field the kernel sends is kept and none is
// invented.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/stage"
)

func init() { register(linkSource{}) }

// linkSource reads struct rtnl_link_stats64 of every interface in the
// namespace of the calling thread.
type linkSource struct{}

func (linkSource) ID() SourceID { return NetlinkLinkStats }

func (linkSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	links, err := r.linkDump()
	if err != nil {
		return err
	}
	if cap(s.Counters) == 0 {
		s.Counters = make([]Counter, 0, len(links)*len(linkStats))
	}
	for _, l := range links {
		s.Add(linkStatsCounters(l)...)
	}
	if err := collectNICs(r, s, links); err != nil {
		s.Fail(NICLayout, err)
	}
	s.BridgePorts = bridgePorts(links)
	return nil
}

// linkInfo is what netdrop needs of one RTM_NEWLINK message.
type linkInfo struct {
	Index int
	Name  string
	// Kind is IFLA_INFO_KIND ("veth", "bridge"); empty for physical NICs and
	// loopback.
	Kind string
	// ParentDev is IFLA_PARENT_DEV_NAME (5.16+): the bus device behind the
	// interface ("0000:00:03.0", "virtio2"). Empty for virtual interfaces.
	ParentDev string
	MAC       string
	TxQLen    int
	// NumTxQueues and NumRxQueues are IFLA_NUM_TX_QUEUES / IFLA_NUM_RX_QUEUES.
	NumTxQueues int
	NumRxQueues int
	// Stats64 is the raw IFLA_STATS64 payload; nil when the kernel sent none.
	Stats64 []byte
	// XDPAttached is IFLA_XDP_ATTACHED (nl.XDP_ATTACHED_DRV, _SKB, _HW;
	// zero for none) and XDPProgID IFLA_XDP_PROG_ID: the XDP program on the
	// link, for the hooks source.
	XDPAttached uint8
	XDPProgID   uint32
	// Master is IFLA_MASTER: the ifindex of the bridge (or bond) the link
	// is a port of, zero for none.
	Master int
	// PortState is a bridge port's STP state (IFLA_BRPORT_STATE in
	// IFLA_INFO_SLAVE_DATA), -1 when the link is no bridge port.
	PortState int
	// STP and ForwardDelay are a bridge's IFLA_BR_STP_STATE (0 off, 1 the
	// kernel's STP, 2 a user-space daemon's) and IFLA_BR_FORWARD_DELAY (in
	// hundredths of a second, as `ip -d link` prints it); STP is -1 for a
	// link that is no bridge.
	STP          int
	ForwardDelay uint32
	// IPv6 says whether the link has IPv6 statistics and whether all
	// are zero (IFLA_AF_SPEC), for the dev_snmp6 source.
	IPv6 ipv6State
}

// dumpLinks lists every interface of the calling thread's network
// namespace, over a socket opened in the calling thread, so a thread that
// entered a namespace reads that namespace. It uses netlinkDump, and the
// library's request when a reply does not fit netlinkDump's buffer.
func dumpLinks(dial dialer) ([]linkInfo, error) {
	var out []linkInfo
	err := netlinkDump(dial, unix.NETLINK_ROUTE, unix.RTM_GETLINK, nl.NewIfInfomsg(unix.AF_UNSPEC).Serialize(), func(typ uint16, m []byte) error {
		if typ != unix.RTM_NEWLINK {
			return nil
		}
		l, err := parseLinkMessage(m)
		if err != nil {
			return err
		}
		l.Stats64 = bytes.Clone(l.Stats64) // m is netlinkDump's buffer
		out = append(out, l)
		return nil
	})
	switch {
	case errors.Is(err, errDumpTruncated):
		return dumpLinksLib()
	case err != nil && !errors.Is(err, errDumpInterrupted):
		return nil, fmt.Errorf("rtm_getlink dump: %w", err)
	}
	// An interrupted dump (a link changed meanwhile) still holds a usable
	// view of every link that did not change; keep it.
	return out, nil
}

// dumpLinksLib is dumpLinks through vishvananda/netlink's request.
func dumpLinksLib() ([]linkInfo, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil && !errors.Is(err, nl.ErrDumpInterrupted) {
		return nil, fmt.Errorf("rtm_getlink dump: %w", err)
	}
	// An interrupted dump (a link changed meanwhile) still holds a usable
	// view of every link that did not change; keep it.
	out := make([]linkInfo, 0, len(msgs))
	for _, m := range msgs {
		l, err := parseLinkMessage(m)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// parseLinkMessage decodes the payload of one RTM_NEWLINK message: a struct
// ifinfomsg followed by IFLA_* attributes.
func parseLinkMessage(m []byte) (linkInfo, error) {
	if len(m) < unix.SizeofIfInfomsg {
		return linkInfo{}, fmt.Errorf("%w: rtm_newlink: %d bytes, shorter than ifinfomsg", ErrFileParse, len(m))
	}
	hdr := nl.DeserializeIfInfomsg(m)
	var buf [32]rtAttr // IFLA_* attributes of one link, without allocating
	attrs, err := appendRtAttrs(buf[:0], m[unix.SizeofIfInfomsg:])
	if err != nil {
		return linkInfo{}, fmt.Errorf("%w: rtm_newlink attributes: %w", ErrFileParse, err)
	}
	l := linkInfo{Index: int(hdr.Index), TxQLen: -1, PortState: -1, STP: -1}
	u32 := func(b []byte) int {
		if len(b) < 4 {
			return 0
		}
		return int(binary.NativeEndian.Uint32(b))
	}
	for _, a := range attrs {
		switch a.Type {
		case unix.IFLA_IFNAME:
			l.Name = cString(a.Value)
		case unix.IFLA_ADDRESS:
			l.MAC = net.HardwareAddr(a.Value).String()
		case unix.IFLA_TXQLEN:
			l.TxQLen = u32(a.Value)
		case unix.IFLA_NUM_TX_QUEUES:
			l.NumTxQueues = u32(a.Value)
		case unix.IFLA_NUM_RX_QUEUES:
			l.NumRxQueues = u32(a.Value)
		case unix.IFLA_PARENT_DEV_NAME:
			l.ParentDev = cString(a.Value)
		case unix.IFLA_STATS64:
			l.Stats64 = a.Value
		case unix.IFLA_MASTER:
			l.Master = u32(a.Value)
		case unix.IFLA_AF_SPEC:
			l.IPv6 = ipv6StateOf(a.Value)
		case unix.IFLA_LINKINFO:
			var nbuf [8]rtAttr
			nested, err := appendRtAttrs(nbuf[:0], a.Value)
			if err != nil {
				continue // kind is informational; a bad nest loses only it
			}
			var slaveKind string
			var data, slaveData []byte
			for _, n := range nested {
				switch n.Type {
				case unix.IFLA_INFO_KIND:
					l.Kind = cString(n.Value)
				case unix.IFLA_INFO_SLAVE_KIND:
					slaveKind = cString(n.Value)
				case unix.IFLA_INFO_DATA:
					data = n.Value
				case unix.IFLA_INFO_SLAVE_DATA:
					slaveData = n.Value
				}
			}
			// The nested attributes' types mean something per kind:
			// read them only for a bridge and a bridge's port.
			if l.Kind == "bridge" {
				l.STP, l.ForwardDelay = parseBridgeData(data)
			}
			if slaveKind == "bridge" {
				l.PortState = parseBridgePortData(slaveData)
			}

		case unix.IFLA_XDP:
			var nbuf [8]rtAttr
			nested, err := appendRtAttrs(nbuf[:0], a.Value)
			if err != nil {
				continue // a bad nest loses only the XDP program's name
			}
			for _, n := range nested {
				switch {
				case n.Type == unix.IFLA_XDP_ATTACHED && len(n.Value) >= 1:
					l.XDPAttached = n.Value[0]
				case n.Type == unix.IFLA_XDP_PROG_ID && len(n.Value) >= 4:
					l.XDPProgID = binary.NativeEndian.Uint32(n.Value)
				}
			}
		}
	}
	if l.Name == "" {
		return linkInfo{}, fmt.Errorf("%w: rtm_newlink for ifindex %d has no IFLA_IFNAME", ErrFileParse, l.Index)
	}
	return l, nil
}

// rtAttr is one netlink route attribute (struct rtattr and its payload).
type rtAttr struct {
	Type  uint16
	Value []byte
}

// appendRtAttrs splits a run of struct rtattr, appending to out. It checks
// every length against the buffer, because nl.ParseRouteAttr panics on an
// attribute whose rta_len is shorter than its own header.
func appendRtAttrs(out []rtAttr, b []byte) ([]rtAttr, error) {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			return nil, fmt.Errorf("attribute length %d outside 4..%d", l, len(b))
		}
		// The type's top bits are NLA_F_NESTED and NLA_F_NET_BYTEORDER.
		out = append(out, rtAttr{Type: binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER), Value: b[unix.SizeofRtAttr:l]})
		adv := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes after the last attribute", len(b))
	}
	return out, nil
}

// cString trims a netlink string attribute at its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// linkStat is one field of struct rtnl_link_stats64 that netdrop reports.
type linkStat struct {
	// Index is the field's position in the struct, in u64 words.
	Index int
	Name  string
	Stage stage.ID
}

// linkStats lists the fields by their position in struct rtnl_link_stats64.
// Names are the kernel's (and sysfs's). Stages follow the stage table in stage/stage.go:
//   - rx_dropped counts packets the stack dropped after the driver handed
//     them over: no protocol handler for the EtherType
//     (__netif_receive_skb_core), per-CPU backlog full
//     (enqueue_to_backlog), a veth peer that could not take the frame;
//     drivers also add their own early drops. The netdev core is the
//     common place, so it maps to softirq.
//   - rx_nohandler (4.6) is the same "no handler" drop on devices that
//     deliver only exact matches (inactive bonding and team slaves), also
//     in __netif_receive_skb_core.
//   - rx_otherhost_dropped (6.0) is counted by ip_rcv_core and
//     ip6_rcv_core for frames addressed to another host's MAC.
var linkStats = []linkStat{
	{0, "rx_packets", ""},
	{1, "tx_packets", ""},
	{4, "rx_errors", ""},
	{5, "tx_errors", ""},
	{6, "rx_dropped", stage.Softirq},
	{7, "tx_dropped", stage.TxRing},
	{10, "rx_length_errors", stage.NIC},
	{11, "rx_over_errors", stage.RxRing},
	{12, "rx_crc_errors", stage.NIC},
	{13, "rx_frame_errors", stage.NIC},
	{14, "rx_fifo_errors", stage.RxRing},
	{15, "rx_missed_errors", stage.RxRing},
	{16, "tx_aborted_errors", stage.TxRing},
	{17, "tx_carrier_errors", stage.TxRing},
	{18, "tx_fifo_errors", stage.TxRing},
	{23, "rx_nohandler", stage.Softirq},
	{24, "rx_otherhost_dropped", stage.IP},
}

// linkStatsCounters turns one interface's stats64 into counters. Fields the
// kernel did not send (a shorter struct on an older kernel) are left out, not
// reported as zero.
func linkStatsCounters(l linkInfo) []Counter {
	words := len(l.Stats64) / 8
	out := make([]Counter, 0, len(linkStats))
	tunnel := tunnelKinds[l.Kind]
	for _, f := range linkStats {
		if f.Index >= words {
			continue
		}
		st := f.Stage
		if tunnel && (st == stage.NIC || st == stage.RxRing) {
			st = stage.Tunnel
		}
		out = append(out, Counter{
			Source: NetlinkLinkStats,
			Object: l.Name,
			Field:  f.Name,
			Value:  binary.NativeEndian.Uint64(l.Stats64[f.Index*8:]),
			Stage:  st,
		})
	}
	return out
}

// tunnelKinds are the IFLA_INFO_KINDs of tunnel devices. They have no wire
// and no ring: they reuse the receive error fields of stats64 for
// decapsulation faults (vxlan and ip_tunnel_rcv count an inner/outer ECN
// conflict as rx_frame_errors, a checksum flag mismatch as rx_crc_errors, a
// sequence error as rx_fifo_errors), so those fields are the tunnel stage,
// not the NIC's.
var tunnelKinds = map[string]bool{
	"vxlan": true, "geneve": true, "bareudp": true, "gre": true, "gretap": true, "ip6gre": true, "ip6gretap": true,
	"erspan": true, "ip6erspan": true, "ipip": true, "sit": true, "ip6tnl": true, "vti": true, "vti6": true,
}

// parseBridgeData reads a bridge's IFLA_INFO_DATA: its STP state and its
// forward delay; STP -1 when the kernel sent no state.
func parseBridgeData(b []byte) (stp int, forwardDelay uint32) {
	stp = -1
	var buf [64]rtAttr // a bridge sends about 50 attributes
	attrs, err := appendRtAttrs(buf[:0], b)
	if err != nil {
		return -1, 0
	}
	for _, a := range attrs {
		if len(a.Value) < 4 {
			continue
		}
		switch a.Type {
		case unix.IFLA_BR_STP_STATE:
			stp = int(binary.NativeEndian.Uint32(a.Value))
		case unix.IFLA_BR_FORWARD_DELAY:
			forwardDelay = binary.NativeEndian.Uint32(a.Value)
		}
	}
	return stp, forwardDelay
}

// parseBridgePortData reads a bridge port's IFLA_INFO_SLAVE_DATA for its
// STP state (IFLA_BRPORT_STATE, one byte), -1 when absent.
func parseBridgePortData(b []byte) int {
	var buf [48]rtAttr
	attrs, err := appendRtAttrs(buf[:0], b)
	if err != nil {
		return -1
	}
	for _, a := range attrs {
		if a.Type == unix.IFLA_BRPORT_STATE && len(a.Value) >= 1 {
			return int(a.Value[0])
		}
	}
	return -1
}

// bridgePorts pairs every bridge port of links with its bridge.
func bridgePorts(links []linkInfo) []BridgePort {
	byIndex := make(map[int]linkInfo, len(links))
	for _, l := range links {
		byIndex[l.Index] = l
	}
	var out []BridgePort
	for _, l := range links {
		if l.PortState < 0 {
			continue
		}
		p := BridgePort{Port: l.Name, State: PortState(l.PortState), STP: -1}
		if br, ok := byIndex[l.Master]; ok {
			p.Bridge, p.STP = br.Name, br.STP
			p.ForwardDelay = time.Duration(br.ForwardDelay) * 10 * time.Millisecond
		}
		out = append(out, p)
	}
	return out
}
