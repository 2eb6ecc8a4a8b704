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

// time-wait-ports: a client that opens one short connection per request
// toward one server, through a narrow ephemeral port range, until connect()
// fails because every port sits in TIME_WAIT.
func init() {
	const (
		port     = 5008
		portLo   = 40000
		portHi   = 40031
		attempts = 200
	)
	register(Scenario{
		Name:       "time-wait-ports",
		Stage:      stage.Ports,
		Story:      "a client with ip_local_port_range 40000-40031 opens and closes connections to one server until connect() fails",
		DiagnoseOn: Sender,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			if err := e.Sender.Sysctl("net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", portLo, portHi)); err != nil {
				return nil, err
			}
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			ln, err := e.listenTCP(e.Receiver, dst, 128, rcvTimeout(100*time.Millisecond))
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				sctx, stop := context.WithCancel(ctx)
				defer stop()
				server := goSafe(func() error { return serveUntilEOF(sctx, ln, attempts) })
				exhausted := 0
				for i := 0; i < attempts && exhausted < 3; i++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					var fd int
					err := e.Sender.Do(func() error {
						var err error
						fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
						return err
					})
					if err != nil {
						return fmt.Errorf("socket in %s: %w", e.Sender.NS, err)
					}
					_ = sndTimeout(time.Second)(fd)
					err = unix.Connect(fd, sockaddr(dst))
					// The client closes first, so the client's port is the
					// one that waits in TIME_WAIT.
					unix.Close(fd)
					switch {
					case err == nil:
					case errors.Is(err, unix.EADDRNOTAVAIL):
						exhausted++
					case errors.Is(err, unix.EINTR), errors.Is(err, unix.EINPROGRESS):
						// A signal (the Go runtime preempts with SIGURG)
						// interrupted the wait for the handshake, or the
						// one-second SO_SNDTIMEO ran out on a loaded host
						// (EINPROGRESS); the port was taken all the same,
						// and is closed.
					default:
						return fmt.Errorf("connect to %s: %w", dst, err)
					}
				}
				// Give the server a moment to close its ends, which moves
				// the last client sockets from FIN_WAIT2 to TIME_WAIT.
				_ = sleepCtx(ctx, 100*time.Millisecond)
				stop()
				if err := <-server; err != nil {
					return err
				}
				if exhausted == 0 {
					return fmt.Errorf("connect never failed with EADDRNOTAVAIL after %d attempts: %w", attempts, errNoFault)
				}
				return nil
			}, nil
		},
	})
}

// serveUntilEOF accepts up to max connections and closes each when its
// client has closed, until ctx ends. The listener's receive timeout bounds
// each accept.
func serveUntilEOF(ctx context.Context, ln, max int) error {
	buf := make([]byte, 512)
	for n := 0; n < max && ctx.Err() == nil; {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		n++
		_ = rcvTimeout(200 * time.Millisecond)(fd)
		for {
			m, err := unix.Read(fd, buf)
			if m <= 0 || err != nil {
				break
			}
		}
		unix.Close(fd)
	}
	return nil
}
