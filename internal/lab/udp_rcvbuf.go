package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// udp-rcvbuf: an application with a small receive buffer that reads slower
// than datagrams arrive; the socket's queue overflows.
func init() {
	const port = 5002
	register(Scenario{
		Name:       "udp-rcvbuf",
		Stage:      stage.SocketRcvbuf,
		Story:      "a UDP receiver with a 4 KiB SO_RCVBUF reads one datagram every 20 ms while 3000 arrive at once",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			rcv, err := e.socket(e.Receiver, unix.SOCK_DGRAM,
				intOpt(unix.SOL_SOCKET, unix.SO_RCVBUF, 4096, "SO_RCVBUF"),
				rcvTimeout(100*time.Millisecond),
				bindTo(dst))
			if err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				rctx, stop := context.WithCancel(ctx)
				defer stop()
				reader := goSafe(func() error { drain(rctx, rcv, 20*time.Millisecond, 100); return nil })
				r, err := floodUDP(ctx, src, dst, flood{Size: 512, Count: 3000, Budget: 2 * time.Second})
				// Let the slow reader take a few more so the story holds:
				// it reads, just too slowly.
				_ = sleepCtx(ctx, 200*time.Millisecond)
				stop()
				if rerr := <-reader; err == nil {
					err = rerr
				}
				if err == nil && r.Sent == 0 {
					err = fmt.Errorf("no datagram was sent")
				}
				return err
			}, nil
		},
	})
}
