package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// qdisc-drop: a shaper on the sender's interface with a queue far too short
// for the rate the application sends at.
func init() {
	const (
		port  = 5009
		rate  = 125000 // bytes per second: 1 Mbit/s
		burst = 4000   // bytes the bucket holds
		limit = 4000   // bytes the queue holds
	)
	register(Scenario{
		Name:       "qdisc-drop",
		Stage:      stage.Qdisc,
		Story:      "a tbf qdisc (1 Mbit/s, 4000-byte queue) on the sender's veth, and a UDP sender going flat out",
		DiagnoseOn: Sender,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			if err := e.addTbf(e.Sender, rate, burst, limit); err != nil {
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
				r, err := floodUDP(ctx, src, dst, flood{Size: 1000, Count: 3000, Spread: 400 * time.Millisecond, Budget: 2 * time.Second})
				if err == nil && r.Sent+r.Errors == 0 {
					err = fmt.Errorf("no datagram was sent")
				}
				return err
			}, nil
		},
	})
}
