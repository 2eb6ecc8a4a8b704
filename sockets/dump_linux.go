//go:build linux

package sockets

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sockDiagByFamily is the netlink message type of an inet_diag_req_v2.
const sockDiagByFamily = unix.SOCK_DIAG_BY_FAMILY

// Conn is one sock_diag netlink connection. It is not safe for concurrent
// use; dumps on it run one after another.
type Conn struct {
	c *netlink.Conn
}

// Dial opens a NETLINK_SOCK_DIAG socket. A netlink socket belongs to the
// network namespace of the thread that creates it, so Dial must run inside the
// namespace to be read (Summarize does this through internal/netns).
func Dial() (*Conn, error) {
	// A fixed 32 KiB receive buffer, as ss uses: the kernel sizes each
	// dump datagram to the largest buffer the reader has offered
	// (netlink_dump, max_recvmsg_len), so a peek-sized read would get
	// one page of sockets per round trip instead of eight.
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, &netlink.Config{MessageBufferSize: 32 << 10})
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", mapErrno(err))
	}
	return &Conn{c: c}, nil
}

// Close releases the socket.
func (c *Conn) Close() error { return c.c.Close() }

// Dump asks the kernel for every socket of one family (unix.AF_INET or
// unix.AF_INET6) and protocol (unix.IPPROTO_TCP or unix.IPPROTO_UDP) in the
// given states, with SKMEMINFO, and calls fn once per socket as the replies
// arrive. Only one reply datagram is held at a time, so a dump of any size
// runs in bounded memory. fn returning an error stops the dump (the rest of
// the reply is drained so the connection stays usable) and Dump returns it.
func (c *Conn) Dump(ctx context.Context, family, proto uint8, states StateSet, fn func(*Socket) error) error {
	var s Socket
	return c.dumpRaw(ctx, family, proto, states, func(m netlink.Message) error {
		var err error
		s, err = decodeMessage(m.Data)
		if err != nil {
			return fmt.Errorf("sock_diag %s: %w", dumpName(family, proto), err)
		}
		if s.Protocol == 0 {
			s.Protocol = proto
		}
		return fn(&s)
	})
}

// dumpRaw sends the request and hands each reply message to fn as it
// arrives (the recorder of testdata uses it directly).
func (c *Conn) dumpRaw(ctx context.Context, family, proto uint8, states StateSet, fn func(netlink.Message) error) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := c.c.SetDeadline(dl); err != nil {
			return fmt.Errorf("sock_diag: set deadline: %w", err)
		}
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  sockDiagByFamily,
			Flags: netlink.Request | netlink.Dump,
		},
		Data: encodeRequest(family, proto, states, extSkmeminfo),
	}
	sent, err := c.c.Send(req)
	if err != nil {
		return fmt.Errorf("sock_diag %s: send: %w", dumpName(family, proto), mapErrno(err))
	}
	var stop error
	for m, err := range c.c.ReceiveIter() {
		if err != nil {
			if stop != nil {
				return stop
			}
			return fmt.Errorf("sock_diag %s: %w", dumpName(family, proto), mapErrno(err))
		}
		if stop != nil {
			continue // drain what the kernel already queued, so the socket stays usable
		}
		if m.Header.Sequence != sent.Header.Sequence || m.Header.Type != sockDiagByFamily {
			continue
		}
		if err := ctx.Err(); err != nil {
			stop = err
			continue
		}
		if err := fn(m); err != nil {
			stop = err
		}
	}
	return stop
}

// mapErrno turns the errors a sock_diag request can meet into the standard
// sentinels, keeping the original in the chain.
func mapErrno(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %w", os.ErrPermission, err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EPROTONOSUPPORT):
		// ENOENT: no inet_diag handler for this protocol (udp_diag or
		// tcp_diag not built or not loaded).
		return fmt.Errorf("%w (is the tcp_diag/udp_diag module loaded?): %w", ErrNotSupported, err)
	}
	return err
}

func dumpName(family, proto uint8) string {
	f := "ipv4"
	if family == unix.AF_INET6 {
		f = "ipv6"
	}
	p := "tcp"
	if proto == unix.IPPROTO_UDP {
		p = "udp"
	}
	return p + "/" + f
}
