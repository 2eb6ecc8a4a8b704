package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// udp-sndbuf: an application that writes faster than its link drains and
// does not wait for the socket to become writable. The shaper queues
// without dropping; the loss is the sends the socket refuses for lack of
// send buffer (EAGAIN, counted as Udp SndbufErrors).
func init() {
	const (
		port  = 5012
		rate  = 125000 // bytes per second: 1 Mbit/s
		burst = 4000   // bytes the bucket holds
		// bytes the queue holds: more than the whole burst (2000
		// datagrams of 1000 bytes), so it never drops, even once a fix
		// lets the socket hand it all at once
		limit = 4 << 20
	)
	register(Scenario{
		Name:       "udp-sndbuf",
		Stage:      stage.TxSocket,
		Story:      "a non-blocking UDP sender with a 4 KiB SO_SNDBUF behind a 1 Mbit/s shaper that queues but never drops",
		DiagnoseOn: Sender,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			if err := e.addTbf(e.Sender, rate, burst, limit); err != nil {
				return nil, err
			}
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK,
				intOpt(unix.SOL_SOCKET, unix.SO_SNDBUF, 4096, "SO_SNDBUF"))
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				r, err := floodUDP(ctx, src, dst, flood{Size: 1000, Count: 2000, Spread: 400 * time.Millisecond, Budget: 2 * time.Second})
				if err == nil && r.Errors == 0 {
					err = fmt.Errorf("no send failed for lack of buffer: %w", errNoFault)
				}
				return err
			}, nil
		},
	})
}
