package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tunnel-vni-mismatch: two VXLAN endpoints over the lab's veth that do not
// agree on the VNI. The sender encapsulates with VNI 200; the receiver's
// vxlan device has VNI 100, so every encapsulated packet reaches the
// receiver's VXLAN socket (Udp InDatagrams counts it as delivered) and is
// dropped there on decapsulation: VXLAN_VNI_NOT_FOUND. No interface counter
// moves; only the tracer sees it.
func init() {
	const (
		port      = 5024
		vxlanPort = 4789
	)
	var (
		overlaySnd = netip.MustParseAddr("10.241.0.1")
		overlayRcv = netip.MustParseAddr("10.241.0.2")
	)
	register(Scenario{
		Name:       "tunnel-vni-mismatch",
		Stage:      stage.Tunnel,
		Story:      "VXLAN between sender (VNI 200) and receiver (VNI 100) over the veth: the receiver drops every encapsulated packet",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			if _, err := addVxlan(e.Sender, 200, vxlanPort, e.Receiver.Addr, overlaySnd); err != nil {
				return nil, err
			}
			rcvMAC, err := addVxlan(e.Receiver, 100, vxlanPort, e.Sender.Addr, overlayRcv)
			if err != nil {
				return nil, err
			}
			// A permanent neighbour on the sender's overlay, so that the
			// flood needs no ARP across the (broken) tunnel.
			if err := overlayNeighbor(e.Sender, overlayRcv, rcvMAC); err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			dst := netip.AddrPortFrom(overlayRcv, port)
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

// vxlanLink is the name of a lab node's vxlan device.
const vxlanLink = Prefix + "vx"

// addVxlan creates a vxlan device with VNI vni on n, over n's veth, sending
// to remote on UDP port, with overlay address addr/24, and returns its MAC.
// It goes with the namespace.
func addVxlan(n *Node, vni, port int, remote, addr netip.Addr) (net.HardwareAddr, error) {
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	idx, err := n.LinkIndex()
	if err != nil {
		return nil, err
	}
	vx := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: vxlanLink},
		VxlanId:      vni,
		VtepDevIndex: idx,
		SrcAddr:      n.Addr.AsSlice(),
		Group:        remote.AsSlice(),
		Port:         port,
	}
	if err := h.LinkAdd(vx); err != nil {
		return nil, fmt.Errorf("vxlan %d in %s: %w", vni, n.NS, err)
	}
	l, err := h.LinkByName(vxlanLink)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", vxlanLink, n.NS, err)
	}
	if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(prefixLen, 32)}}); err != nil {
		return nil, fmt.Errorf("address %s on %s in %s: %w", addr, vxlanLink, n.NS, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set %s up in %s: %w", vxlanLink, n.NS, err)
	}
	return l.Attrs().HardwareAddr, nil
}

// overlayNeighbor adds a permanent neighbour entry on n's vxlan device.
func overlayNeighbor(n *Node, ip netip.Addr, mac net.HardwareAddr) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(vxlanLink)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", vxlanLink, n.NS, err)
	}
	err = h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac})
	if err != nil {
		return fmt.Errorf("neighbour %s on %s in %s: %w", ip, vxlanLink, n.NS, err)
	}
	return nil
}
