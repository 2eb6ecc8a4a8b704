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

// xdp-drop: an XDP program on the receiver's veth, attached in generic
// (skb) mode, returns XDP_DROP for one service's datagrams: the first
// hook of the receive path refuses them before the stack sees them. BPF
// run statistics are switched on for the scenario (kernel.bpf_stats_enabled,
// host-wide, journalled) so that the program's run count shows how many
// packets it judged.
func init() {
	const port = 5022
	register(Scenario{
		Name:       "xdp-drop",
		Stage:      stage.XDP,
		Story:      "an XDP program (generic mode) on the receiver's veth drops UDP to port 5022",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
				return nil, err
			}
			if err := e.SetGlobal("kernel.bpf_stats_enabled", "1"); err != nil {
				return nil, err
			}
			prog, err := e.loadHookProg("xdp_drop_udp", port)
			if err != nil {
				return nil, err
			}
			if err := e.attachXDP(e.Receiver, prog, nl.XDP_FLAGS_SKB_MODE); err != nil {
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
