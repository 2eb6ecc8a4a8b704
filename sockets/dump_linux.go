//go:build linux

package sockets

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink message types of NETLINK_SOCK_DIAG requests: an inet_diag_req_v2
// for one family, and the older inet_diag_req for TCP of every family
// (TCPDIAG_GETSOCK in linux/inet_diag.h).
const (
	sockDiagByFamily netlink.HeaderType = unix.SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock   netlink.HeaderType = 18
)

// Conn is one sock_diag netlink connection. It is not safe for concurrent
// use; dumps on it run one after another.
type Conn struct {
	c   *netlink.Conn
	buf []byte // one reply datagram, reused for every reply of every dump
}

// Dial opens a NETLINK_SOCK_DIAG socket. A netlink socket belongs to the
// network namespace of the thread that creates it, so Dial must run inside the
// namespace to be read (Summarize does this through internal/netns).
func Dial() (*Conn, error) {
	// Replies are read into a buffer of dumpBuffer bytes (receiveDump);
	// the library's is only used by connections without a socket.
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, &netlink.Config{MessageBufferSize: dumpBuffer})
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
	return c.dumpSockets(ctx, family, proto, states, fn)
}

// DumpTCP is Dump of the TCP sockets of both families in the given states,
// in one walk of the kernel's connection hash instead of one per family.
// A dump walks the whole established hash, which holds the TIME_WAIT and
// connected sockets of every family and namespace, whatever it asks for:
// with 100k IPv4 TIME_WAIT sockets the IPv6 dump alone took 15-20 ms to
// find none. The old TCPDIAG_GETSOCK request (struct inet_diag_req) is the
// kernel's only way to ask for both at once (inet_diag_dump_compat sets
// AF_UNSPEC); a kernel that refuses it gets one dump per family, as before.
// Sockets arrive in the kernel's hash order, IPv4 and IPv6 mixed.
func (c *Conn) DumpTCP(ctx context.Context, states StateSet, fn func(*Socket) error) error {
	var (
		s    Socket
		seen bool
	)
	err := c.dumpRaw(ctx, tcpDiagGetSock, encodeRequestV1(states, extSkmeminfo), "tcp", func(m netlink.Message) error {
		seen = true
		var err error
		s, err = decodeMessage(m.Data)
		if err != nil {
			return fmt.Errorf("sock_diag tcp: %w", err)
		}
		if s.Protocol == 0 {
			s.Protocol = unix.IPPROTO_TCP
		}
		return fn(&s)
	})
	if err == nil || seen || ctx.Err() != nil {
		return err
	}
	// Refused before any socket (EINVAL where the old request is gone):
	// one dump per family, whose errors are the ones to report.
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := c.dumpSockets(ctx, fam, unix.IPPROTO_TCP, states, fn); err != nil {
			return err
		}
	}
	return nil
}

// dumpSockets is Dump: one SOCK_DIAG_BY_FAMILY request, decoded replies.
func (c *Conn) dumpSockets(ctx context.Context, family, proto uint8, states StateSet, fn func(*Socket) error) error {
	var s Socket
	name := dumpName(family, proto)
	return c.dumpRaw(ctx, sockDiagByFamily, encodeRequest(family, proto, states, extSkmeminfo), name, func(m netlink.Message) error {
		var err error
		s, err = decodeMessage(m.Data)
		if err != nil {
			return fmt.Errorf("sock_diag %s: %w", name, err)
		}
		if s.Protocol == 0 {
			s.Protocol = proto
		}
		return fn(&s)
	})
}

// dumpFamily sends one SOCK_DIAG_BY_FAMILY dump request and hands each
// reply message to fn as it arrives (the recorder of testdata uses it
// directly).
func (c *Conn) dumpFamily(ctx context.Context, family, proto uint8, states StateSet, fn func(netlink.Message) error) error {
	return c.dumpRaw(ctx, sockDiagByFamily, encodeRequest(family, proto, states, extSkmeminfo), dumpName(family, proto), fn)
}

// dumpRaw sends a dump request of type typ with body data and hands each
// reply message to fn as it arrives. Replies carry the request's type. name
// says which dump in errors. A refusal by the kernel is returned as a
// *netlinkError in the chain.
func (c *Conn) dumpRaw(ctx context.Context, typ netlink.HeaderType, data []byte, name string, fn func(netlink.Message) error) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := c.c.SetDeadline(dl); err != nil {
			return fmt.Errorf("sock_diag: set deadline: %w", err)
		}
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  typ,
			Flags: netlink.Request | netlink.Dump,
		},
		Data: data,
	}
	sent, err := c.c.Send(req)
	if err != nil {
		return fmt.Errorf("sock_diag %s: send: %w", name, mapErrno(err))
	}
	deliver := func(m netlink.Message) error {
		if m.Header.Sequence != sent.Header.Sequence || m.Header.Type != typ {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(m)
	}
	if raw, err := c.c.SyscallConn(); err == nil {
		if c.buf == nil {
			c.buf = make([]byte, dumpBuffer)
		}
		if err := receiveDump(raw, c.buf, deliver); err != nil {
			var ne *netlinkError
			if errors.As(err, &ne) {
				return fmt.Errorf("sock_diag %s: %w", name, mapErrno(err))
			}
			return err
		}
		return nil
	}
	// A connection without a socket (nltest in tests) goes through the
	// library's receive, which copies each reply into a new buffer.
	var stop error
	for m, err := range c.c.ReceiveIter() {
		if err != nil {
			if stop != nil {
				return stop
			}
			return fmt.Errorf("sock_diag %s: %w", name, mapErrno(err))
		}
		if stop != nil {
			continue // drain what the kernel already queued, so the socket stays usable
		}
		stop = deliver(m)
	}
	return stop
}

// dumpBuffer is the size of a reply datagram: 32 KiB, as ss uses. The kernel
// sizes each dump datagram to the largest buffer the reader has offered
// (netlink_dump, max_recvmsg_len), so a smaller read would get one page of
// sockets per round trip instead of eight.
const dumpBuffer = 32 << 10

// netlinkError is an error the kernel reported in the dump (NLMSG_ERROR,
// or a status in NLMSG_DONE), as opposed to one of the socket.
type netlinkError struct{ errno unix.Errno }

func (e *netlinkError) Error() string { return "netlink: " + e.errno.Error() }
func (e *netlinkError) Unwrap() error { return e.errno }

// receiveDump reads the replies of one dump into buf, one datagram at a
// time, and hands each message to fn until NLMSG_DONE: the library's
// receive allocates a new buffer per datagram (32 KiB, some 300 sockets),
// which for 100k sockets is 10 MB of garbage and most of the peak RSS. An
// error of fn ends the dump after the rest is drained, so that the
// connection stays usable, and is returned.
func receiveDump(raw syscall.RawConn, buf []byte, fn func(netlink.Message) error) error {
	var stop error
	for {
		var (
			n, flags int
			rerr     error
		)
		err := raw.Read(func(fd uintptr) bool {
			n, _, flags, _, rerr = unix.Recvmsg(int(fd), buf, nil, 0)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("sock_diag: receive: %w", err)
		}
		if flags&unix.MSG_TRUNC != 0 {
			return fmt.Errorf("sock_diag: reply of %d bytes truncated", n)
		}
		done, err := parseReplies(buf[:n], func(m netlink.Message) {
			if stop == nil {
				stop = fn(m)
			}
		})
		if err != nil {
			return err
		}
		if done {
			return stop
		}
	}
}

// parseReplies splits one reply datagram into messages and hands every
// message but the dump's end and errors to fn. The messages' data points
// into b. It reports whether the dump ended (NLMSG_DONE, or an error,
// which it returns as a *netlinkError).
func parseReplies(b []byte, fn func(netlink.Message)) (done bool, err error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		h := netlink.Header{
			Length:   binary.NativeEndian.Uint32(b[0:4]),
			Type:     netlink.HeaderType(binary.NativeEndian.Uint16(b[4:6])),
			Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(b[6:8])),
			Sequence: binary.NativeEndian.Uint32(b[8:12]),
			PID:      binary.NativeEndian.Uint32(b[12:16]),
		}
		if h.Length < unix.NLMSG_HDRLEN || int(h.Length) > len(b) {
			return true, fmt.Errorf("sock_diag: malformed reply message (length %d of %d bytes)", h.Length, len(b))
		}
		data := b[unix.NLMSG_HDRLEN:h.Length]
		switch h.Type {
		case netlink.Error, netlink.Done:
			if len(data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(data[:4])); code < 0 {
					return true, &netlinkError{unix.Errno(-code)}
				}
			}
			if h.Type == netlink.Done {
				return true, nil
			}
		default:
			fn(netlink.Message{Header: h, Data: data})
		}
		next := (int(h.Length) + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return false, nil
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
