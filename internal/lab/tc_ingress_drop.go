package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// tc-ingress-drop: an eBPF program in a clsact ingress filter on the
// receiver's veth returns TC_ACT_SHOT for one service's datagrams, as the
// policy programs of eBPF datapaths do. The loss is on the receive side;
// the transmit queue has nothing to do with it.
func init() {
	const port = 5021
	register(Scenario{
		Name:       "tc-ingress-drop",
		Stage:      stage.TCIngress,
		Story:      "a tc ingress eBPF filter (clsact, direct-action) on the receiver drops UDP to port 5021",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
				return nil, err
			}
			prog, err := e.loadHookProg("tc_drop_udp", port)
			if err != nil {
				return nil, err
			}
			if err := e.addTCIngressBPF(e.Receiver, prog, "ndlab_tc_drop"); err != nil {
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
