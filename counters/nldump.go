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
var dumpBufs = sync.Pool{New: func() any { return new([dumpBufSize]byte) }}

// nlDumpTimeout bounds a reply that never comes, as the libraries do.
var nlDumpTimeout = unix.Timeval{Sec: 10}

// netlinkDump sends a dump request of type typ with payload on a new
// socket of protocol proto, opened in the calling thread's network
// namespace, and calls fn with the type and payload of every message of
// the reply. data is only valid during the call: fn copies what it keeps.
// It returns errDumpInterrupted (after the whole reply) when the
// kernel flagged the dump as inconsistent, and the kernel's errno from an
// NLMSG_ERROR or NLMSG_DONE status.
func netlinkDump(proto int, typ uint16, payload []byte, fn func(typ uint16, data []byte) error) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &nlDumpTimeout); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	const seq = 1
	req := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload))
	req = append(req, payload...)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], typ)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], seq)
	for {
		err = unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return os.NewSyscallError("sendto", err)
	}
	bp := dumpBufs.Get().(*[dumpBufSize]byte)
	defer dumpBufs.Put(bp)
	buf := bp[:]
	interrupted := false
	for {
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvfrom", err)
		}
		if n > len(buf) {
			return errDumpTruncated
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
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
