package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// xdp-native-drop: the same XDP program attached in native (driver) mode,
// which veth supports. On a hardware NIC a native XDP drop frees no socket
// buffer, so the tracer cannot see it and the driver's XDP counters (ethtool
// -S: rx_queue_N_xdp_drops on veth) are the evidence; veth runs XDP on the
// skb it was handed, so here both see it and must agree.
func init() {
	const port = 5023
	register(Scenario{
		Name:       "xdp-native-drop",
		Stage:      stage.XDP,
		Story:      "an XDP program in native (driver) mode on the receiver's veth drops UDP to port 5023",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
				return nil, err
			}
			prog, err := e.loadHookProg("xdp_drop_udp", port)
			if err != nil {
				return nil, err
			}
			if err := e.attachXDP(e.Receiver, prog, nl.XDP_FLAGS_DRV_MODE); err != nil {
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
