package counters

// A minimal netlink dump on a blocking socket. The netlink libraries open
// non-blocking sockets registered with the Go runtime's poller (fcntl,
// epoll_ctl, a park when a reply is not queued yet) and set options and
// query the bound address on each; a snapshot makes a dump per source, in
// worker threads locked in a namespace, where each of those steps costs a
// system call or a thread hand-off. The kernel builds dump replies in the
// recvmsg call itself, so a blocking socket never waits on anything but
// the kernel's own work.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// errDumpTruncated says a reply did not fit the receive buffer; callers
// fall back to the library's dump.
var errDumpTruncated = errors.New("netlink reply larger than the receive buffer")

// errDumpInterrupted says the kernel flagged the dump NLM_F_DUMP_INTR: the
// set changed while it was dumped. What was received is still usable.
var errDumpInterrupted = errors.New("netlink dump interrupted")

// dumpBufSize is the receive buffer. The kernel sizes dump replies from the
// reader's buffer but caps them at 32 KiB (netlink_recvmsg's
// max_recvmsg_len), unless a single message is larger (min_dump_alloc).
const dumpBufSize = 32 * 1024

// dumpBufs recycles receive buffers: a fresh 32 KiB per dump would be
// fresh pages for the kernel to fault in and zero on most snapshots.
// Process-wide but safe: a buffer belongs to one netlinkDump from Get to
// Put, and its callbacks copy what they keep (dumpLinks clones Stats64).
// This pool and scanLines' two are the snapshot's scratch; without them
// BenchmarkCollectAll took 1.9 → 2.7 ms of CPU and 256 → 783 KB per
// snapshot, so they stay.
var dumpBufs = sync.Pool{New: func() any { return new([dumpBufSize]byte) }}

// nlDumpTimeout bounds a reply that never comes, as the libraries do.
var nlDumpTimeout = unix.Timeval{Sec: 10}

// dumpConn is the socket one dump runs on: a raw netlink socket of the
// calling thread's namespace (rawDumpConn), or in tests a fake kernel that
// checks the request bytes and answers with prepared replies, so the dump,
// decode and errno paths run without root.
type dumpConn interface {
	// send sends one request datagram to the kernel.
	send(req []byte) error
	// recv reads one datagram into buf. n is the datagram's whole
	// length, more than len(buf) when it did not fit; fromKernel is false
	// for a datagram another process sent.
	recv(buf []byte) (n int, fromKernel bool, err error)
	close() error
}

// dialer opens a dumpConn of a netlink protocol (unix.NETLINK_ROUTE,
// unix.NETLINK_NETFILTER).
type dialer func(proto int) (dumpConn, error)

// dialRaw opens a blocking netlink socket in the calling thread's network
// namespace.
func dialRaw(proto int) (dumpConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &nlDumpTimeout); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt", err)
	}
	return rawDumpConn(fd), nil
}

// rawDumpConn is a netlink socket descriptor.
type rawDumpConn int

func (c rawDumpConn) send(req []byte) error {
	for {
		err := unix.Sendto(int(c), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("sendto", err)
		}
		return nil
	}
}

func (c rawDumpConn) recv(buf []byte) (int, bool, error) {
	for {
		n, from, err := unix.Recvfrom(int(c), buf, unix.MSG_TRUNC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false, os.NewSyscallError("recvfrom", err)
		}
		sa, ok := from.(*unix.SockaddrNetlink)
		return n, ok && sa.Pid == 0, nil
	}
}

func (c rawDumpConn) close() error { return unix.Close(int(c)) }

// netlinkDump sends a dump request of type typ with payload on a
// socket of protocol proto from dial, and calls fn with the type and
// payload of every message of the reply. data is only valid during the
// call: fn copies what it keeps. It returns errDumpInterrupted (after the
// whole reply) when the kernel flagged the dump as inconsistent, and the
// kernel's errno from an NLMSG_ERROR or NLMSG_DONE status. A socket kept
// for the next dump (KeptFiles) is discarded after any error: the rest of
// an unfinished reply may still be queued on it.
func netlinkDump(dial dialer, proto int, typ uint16, payload []byte, fn func(typ uint16, data []byte) error) (err error) {
	c, err := dial(proto)
	if err != nil {
		return err
	}
	defer func() {
		if d, ok := c.(discarder); ok && err != nil {
			d.discard()
		}
		c.close()
	}()
	const seq = 1
	req := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	req = append(req, payload...)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], typ)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], seq)
	if err := c.send(req); err != nil {
		return err
	}
	bp := dumpBufs.Get().(*[dumpBufSize]byte)
	defer dumpBufs.Put(bp)
	buf := bp[:]
	interrupted := false
	for {
		n, fromKernel, err := c.recv(buf)
		if err != nil {
			return err
		}
		if n > len(buf) {
			return errDumpTruncated
		}
		if !fromKernel {
			continue
		}
		done, intr, err := walkNetlink(buf[:n], seq, fn)
		interrupted = interrupted || intr
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	if interrupted {
		return errDumpInterrupted
	}
	return nil
}

// walkNetlink calls fn for each message of one datagram of the reply to
// request seq. done is true at NLMSG_DONE or an error status.
func walkNetlink(b []byte, seq uint32, fn func(typ uint16, data []byte) error) (done, interrupted bool, err error) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return true, interrupted, fmt.Errorf("%w: netlink message length %d outside %d..%d", ErrFileParse, l, unix.NLMSG_HDRLEN, len(b))
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		flags := binary.NativeEndian.Uint16(b[6:])
		mseq := binary.NativeEndian.Uint32(b[8:])
		data := b[unix.NLMSG_HDRLEN:l]
		adv := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
		if mseq != seq {
			continue
		}
		if flags&unix.NLM_F_DUMP_INTR != 0 {
			interrupted = true
		}
		switch typ {
		case unix.NLMSG_NOOP:
			continue
		case unix.NLMSG_DONE, unix.NLMSG_ERROR:
			// Both start with an int: 0, or a negative errno.
			if len(data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(data)); e < 0 {
					return true, interrupted, unix.Errno(-e)
				}
			}
			return true, interrupted, nil
		}
		if err := fn(typ, data); err != nil {
			return true, interrupted, err
		}
	}
	return false, interrupted, nil
}
