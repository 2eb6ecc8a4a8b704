package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// tcp-listen-overflow: a server whose accept loop is stuck, with a tiny
// listen backlog, while clients keep connecting.
func init() {
	const (
		port    = 5004
		clients = 60
	)
	register(Scenario{
		Name:       "tcp-listen-overflow",
		Stage:      stage.TCPListen,
		Story:      "a TCP listener with backlog 1 that never calls accept, and 60 clients connecting",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.listenTCP(e.Receiver, dst, 1); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				for i := 0; i < clients; i++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					fd, err := e.socket(e.Sender, unix.SOCK_STREAM|unix.SOCK_NONBLOCK)
					if err != nil {
						return err
					}
					if err := unix.Connect(fd, sockaddr(dst)); err != nil && !errors.Is(err, unix.EINPROGRESS) {
						return fmt.Errorf("connect to %s: %w", dst, err)
					}
				}
				// The clients retransmit their SYNs after one second; the
				// listener drops them again. Waiting for that round shows
				// the overflow as it persists, not as one burst.
				return sleepCtx(ctx, 1200*time.Millisecond)
			}, nil
		},
	})
}
