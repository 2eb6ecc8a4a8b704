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

// rp-filter: asymmetric routing. Datagrams arrive from a source the
// receiver routes back through another interface than the one they came
// in on, and the strict reverse-path filter drops them before any socket
// sees them. The route back is real (a second veth pair on the receiver),
// as on a multi-homed host: that is the case netdrop's fix, loose mode,
// is for. A source with no route back at all is dropped in loose mode too.
func init() {
	const port = 5010
	spoofed := netip.MustParseAddr("10.232.0.1")
	otherNet := netip.MustParsePrefix("10.232.0.0/24")
	register(Scenario{
		Name:       "rp-filter",
		Stage:      stage.IP,
		Story:      "datagrams from 10.232.0.1, which the receiver routes back through another interface (asymmetric routing), and strict rp_filter on the receiver",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			// The sender owns the second address, as a multi-homed host
			// whose replies would leave by another link.
			h, err := e.Sender.Netlink()
			if err != nil {
				return nil, err
			}
			defer h.Close()
			l, err := h.LinkByName(e.Sender.Link)
			if err != nil {
				return nil, fmt.Errorf("%s in %s: %w", e.Sender.Link, e.Sender.NS, err)
			}
			a := &netlink.Addr{IPNet: &net.IPNet{IP: spoofed.AsSlice(), Mask: net.CIDRMask(32, 32)}}
			if err := h.AddrAdd(l, a); err != nil {
				return nil, fmt.Errorf("address %s in %s: %w", spoofed, e.Sender.NS, err)
			}
			// The receiver's route back to the sender's second address
			// leaves by another link: a veth pair of its own, both ends
			// up (a link without carrier would not be routed through).
			if err := otherRoute(e.Receiver, otherNet); err != nil {
				return nil, err
			}
			// The effective rp_filter of an interface is the larger of
			// "all" and its own; set both to strict.
			for _, s := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf." + e.Receiver.Link + ".rp_filter"} {
				if err := e.Receiver.Sysctl(s, "1"); err != nil {
					return nil, err
				}
			}
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			// A buffer that holds every datagram: once the fix lets them
			// through, none is lost at the socket instead.
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, intOpt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20, "SO_RCVBUFFORCE"), bindTo(dst)); err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM, bindTo(netip.AddrPortFrom(spoofed, 0)))
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

// otherRoute gives n a second link, a veth pair whose both ends stay in
// n's namespace (they go with it), and routes prefix through it.
func otherRoute(n *Node, prefix netip.Prefix) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	const name, peer = "rpback0", "rpback1"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		return fmt.Errorf("veth %s in %s: %w", name, n.NS, err)
	}
	var link netlink.Link
	for _, l := range []string{peer, name} {
		k, err := h.LinkByName(l)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", l, n.NS, err)
		}
		if err := h.LinkSetUp(k); err != nil {
			return fmt.Errorf("%s up in %s: %w", l, n.NS, err)
		}
		link = k
	}
	r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)}, Scope: netlink.SCOPE_LINK}
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("route %s dev %s in %s: %w", prefix, name, n.NS, err)
	}
	return nil
}
