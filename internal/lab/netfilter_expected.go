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

// netfilter-expected: the receiver's firewall drops a port scan's UDP on
// purpose, and the user says so with --expect netfilter:5011. The drops
// stay in the diagnosis, counted, as information with the reason
// "expected", and the exit code stays 0.
func init() {
	const port = 5011
	register(Scenario{
		Name:       "netfilter-expected",
		Stage:      stage.Netfilter,
		Story:      "an nftables rule on the receiver drops UDP to port 5011 on purpose, declared with --expect netfilter:5011",
		DiagnoseOn: Receiver,
		Expect:     []string{fmt.Sprintf("netfilter:%d", port)},
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
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
