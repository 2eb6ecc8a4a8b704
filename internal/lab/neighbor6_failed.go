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

// neighbor6-failed: an application sends to an IPv6 address on its own
// link where no host answers neighbour solicitations (NDP). Packets wait in
// the neighbour entry's queue while the kernel asks; the queue overflows
// (ndisc_cache unresolved_discards, NEIGH_QUEUEFULL) and, when the
// solicitations go unanswered, the entry fails (res_failed) and what it
// still held is dropped (NEIGH_FAILED).
//
// The neighbour tables' statistics are shared by all namespaces and shown
// only in the initial one, so this scenario's diagnosis reads the host, as
// neighbor-unresolved does.
func init() {
	const port = 5014
	local := netip.MustParsePrefix("fd00:231::1/64")
	absent := netip.MustParseAddr("fd00:231::99")
	register(Scenario{
		Name:       "neighbor6-failed",
		Stage:      stage.Neighbor,
		Story:      "2000 UDP datagrams to fd00:231::99, an IPv6 address on the sender's link where nobody answers neighbour solicitations",
		DiagnoseOn: Host,
		HostWide:   true,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			// The lab turns IPv6 off; the sender's link gets it back,
			// without duplicate address detection or router
			// solicitations, so the only NDP traffic is the scenario's.
			for name, v := range map[string]string{
				"net.ipv6.conf." + e.Sender.Link + ".disable_ipv6":         "0",
				"net.ipv6.conf." + e.Sender.Link + ".accept_dad":           "0",
				"net.ipv6.conf." + e.Sender.Link + ".router_solicitations": "0",
			} {
				if err := e.Sender.Sysctl(name, v); err != nil {
					return nil, err
				}
			}
			if err := addAddr6(e.Sender, local); err != nil {
				return nil, err
			}
			src, err := e.socketOf(e.Sender, unix.AF_INET6, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			dst := netip.AddrPortFrom(absent, port)
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

// addAddr6 gives n's link an IPv6 address, usable at once (no DAD).
func addAddr6(n *Node, p netip.Prefix) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(n.Link)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", n.Link, n.NS, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}, Flags: unix.IFA_F_NODAD}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("address %s on %s in %s: %w", p, n.Link, n.NS, err)
	}
	return nil
}
