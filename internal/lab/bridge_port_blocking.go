package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// bridge-port-blocking: the receiver's veth becomes a port of a bridge that
// runs STP with the longest forward delay (30 s). A new port of an STP
// bridge listens before it forwards, so for the first forward delay the
// bridge takes every frame arriving on it (rx_handler) and drops it
// (BRIDGE_INGRESS_STP_STATE) — the "network is dead for 30 seconds after I
// plug in" every bridge user meets once. No counter of the port or the
// bridge moves; the veth counts the frames received, and only the tracer
// sees the drop.
//
// The kernel refuses a port state set by hand while its own STP runs, and
// without STP it selects forwarding again right after a hand-set blocking:
// listening is the state a bridge really keeps a port in.
func init() {
	const port = 5025
	register(Scenario{
		Name:       "bridge-port-blocking",
		Stage:      stage.Bridge,
		Story:      "the receiver's veth joins a bridge running STP (forward delay 30 s): while the port listens, the bridge drops every frame arriving on it",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			if err := addSTPBridgePort(e.Receiver, 30*time.Second); err != nil {
				return nil, err
			}
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				r, err := floodUDP(ctx, src, dst, flood{Size: 200, Count: 2000, Spread: 400 * time.Millisecond, Budget: 2 * time.Second})
				if err == nil && r.Sent == 0 {
					err = fmt.Errorf("no datagram was sent")
				}
				return err
			}, nil
		},
	})
}

// bridgeLink is the name of the lab's bridge.
const bridgeLink = Prefix + "br"

// addSTPBridgePort creates a bridge on n running the kernel's STP with the
// given forward delay, brings it up and makes n's veth its port: the port
// starts in STP state listening and stays there for one forward delay. The
// bridge goes with the namespace; the veth keeps its address.
func addSTPBridgePort(n *Node, forwardDelay time.Duration) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeLink}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge in %s: %w", n.NS, err)
	}
	l, err := h.LinkByName(bridgeLink)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", bridgeLink, n.NS, err)
	}
	// STP on before the port joins: a port that is already forwarding
	// keeps forwarding when STP starts.
	if err := n.Do(func() error { return setBridgeSTP(l.Attrs().Index, forwardDelay) }); err != nil {
		return fmt.Errorf("stp on %s in %s: %w", bridgeLink, n.NS, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up in %s: %w", bridgeLink, n.NS, err)
	}
	p, err := h.LinkByName(n.Link)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", n.Link, n.NS, err)
	}
	if err := h.LinkSetMaster(p, l); err != nil {
		return fmt.Errorf("%s as a port of %s in %s: %w", n.Link, bridgeLink, n.NS, err)
	}
	return nil
}

// setBridgeSTP turns the kernel's STP on for the bridge with index idx in
// the calling thread's namespace, with the given forward delay, as `ip link
// set BR type bridge forward_delay D stp_state 1` does (RTM_NEWLINK,
// IFLA_BR_FORWARD_DELAY in hundredths of a second, IFLA_BR_STP_STATE; the
// kernel applies the delay first). vishvananda/netlink's Bridge has no STP
// attributes.
func setBridgeSTP(idx int, forwardDelay time.Duration) error {
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(idx)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_FORWARD_DELAY, u32(uint32(forwardDelay/(10*time.Millisecond))))
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, u32(1))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}
