package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables/expr"
	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// netfilter-drop: a firewall rule on the receiver drops a service's traffic
// before the listening application sees it.
func init() {
	const port = 5001
	register(Scenario{
		Name:       "netfilter-drop",
		Stage:      stage.Netfilter,
		Story:      "an nftables rule on the receiver drops UDP to port 5001; the listening app never sees it",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
				return nil, err
			}
			if err := e.addInputRules(e.Receiver, then(matchUDPDport(port), expr.VerdictDrop)); err != nil {
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
