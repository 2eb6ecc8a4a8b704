package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// udp-no-socket: datagrams for a service that is not running.
func init() {
	const port = 5003
	register(Scenario{
		Name:       "udp-no-socket",
		Stage:      stage.NoSocket,
		Story:      "2000 UDP datagrams to port 5003 on the receiver, where nothing listens",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
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
