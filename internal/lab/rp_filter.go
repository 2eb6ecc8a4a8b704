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
// receiver would not route back through the interface they came in on, and
// the strict reverse-path filter drops them before any socket sees them.
func init() {
	const port = 5010
	spoofed := netip.MustParseAddr("10.232.0.1")
	register(Scenario{
		Name:       "rp-filter",
		Stage:      stage.IP,
		Story:      "datagrams from 10.232.0.1, which the receiver has no route back to, and strict rp_filter on the receiver",
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
			// The effective rp_filter of an interface is the larger of
			// "all" and its own; set both to strict.
			for _, s := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf." + e.Receiver.Link + ".rp_filter"} {
				if err := e.Receiver.Sysctl(s, "1"); err != nil {
					return nil, err
				}
			}
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
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
