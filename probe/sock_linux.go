package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgBatch is a set of preallocated mmsghdrs for sendmmsg(2) and
// recvmmsg(2). golang.org/x/net/ipv4's ReadBatch parses a net.Addr for every
// datagram (an allocation per packet at a million packets per second); this
// keeps the source address raw and parses it only for control frames.
type mmsgBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	oobs  [][]byte
	names []unix.RawSockaddrAny
}

const oobSize = 64 // room for SO_RXQ_OVFL (and a timestamp) per datagram

func newBatch(n, bufSize int, withOOB bool) *mmsgBatch {
	b := &mmsgBatch{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		bufs:  make([][]byte, n),
		oobs:  make([][]byte, n),
		names: make([]unix.RawSockaddrAny, n),
	}
	mem := make([]byte, n*bufSize)
	var oob []byte
	if withOOB {
		oob = make([]byte, n*oobSize)
	}
	for i := range n {
		b.bufs[i] = mem[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(bufSize)
		h := &b.hdrs[i].Hdr
		h.Iov = &b.iovs[i]
		h.Iovlen = 1
		if withOOB {
			b.oobs[i] = oob[i*oobSize : (i+1)*oobSize : (i+1)*oobSize]
			h.Control = &b.oobs[i][0]
		}
	}
	return b
}

// prepareRecv resets the lengths the kernel overwrites on each recvmmsg.
func (b *mmsgBatch) prepareRecv() {
	for i := range b.hdrs {
		h := &b.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		if b.oobs[i] != nil {
			h.SetControllen(oobSize)
		}
		h.Flags = 0
		b.hdrs[i].Len = 0
	}
}

// setSendLen sets the length of datagram i for the next sendmmsg.
func (b *mmsgBatch) setSendLen(i, n int) { b.iovs[i].SetLen(n) }

// msgLen is the length the kernel reported for datagram i.
func (b *mmsgBatch) msgLen(i int) int { return int(b.hdrs[i].Len) }

// truncated says whether datagram i did not fit its buffer.
func (b *mmsgBatch) truncated(i int) bool { return b.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// oob returns the control data of datagram i.
func (b *mmsgBatch) oob(i int) []byte {
	if b.oobs[i] == nil {
		return nil
	}
	return b.oobs[i][:b.hdrs[i].Hdr.Controllen]
}

// addr returns the source address of datagram i (allocates; control frames only).
func (b *mmsgBatch) addr(i int) *net.UDPAddr {
	sa := &b.names[i]
	switch sa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return &net.UDPAddr{IP: net.IP(append([]byte(nil), p.Addr[:]...)), Port: int(port)}
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p.Port))[:])
		return &net.UDPAddr{IP: net.IP(append([]byte(nil), p.Addr[:]...)), Port: int(port)}
	}
	return nil
}

// mmsgConn runs sendmmsg and recvmmsg on a UDP socket through its RawConn so
// Go's poller does the waiting. The closures are built once: passing a fresh
// closure per call would allocate per batch.
type mmsgConn struct {
	rc         syscall.RawConn
	batch      *mmsgBatch
	n, vlen    int
	err        error
	readFn     func(fd uintptr) bool
	writeFn    func(fd uintptr) bool
	writeStart int
}

func newMmsgConn(c *net.UDPConn, b *mmsgBatch) (*mmsgConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgConn{rc: rc, batch: b}
	m.readFn = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.batch.hdrs[0])), uintptr(m.vlen), 0, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		m.n, m.err = int(r), errnoErr(e)
		return true
	}
	m.writeFn = func(fd uintptr) bool {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.batch.hdrs[m.writeStart])), uintptr(m.vlen), 0, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		m.n, m.err = int(r), errnoErr(e)
		return true
	}
	return m, nil
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// recv reads up to vlen datagrams, blocking until at least one is there (or
// the read deadline passes).
func (m *mmsgConn) recv(vlen int) (int, error) {
	m.batch.prepareRecv()
	m.vlen = min(vlen, len(m.batch.hdrs))
	m.n, m.err = 0, nil
	if err := m.rc.Read(m.readFn); err != nil {
		return 0, err
	}
	if m.err != nil {
		return 0, m.err
	}
	return m.n, nil
}

// send writes datagrams [start, start+vlen) of the batch and returns how
// many the kernel took.
func (m *mmsgConn) send(start, vlen int) (int, error) {
	m.writeStart, m.vlen = start, vlen
	m.n, m.err = 0, nil
	if err := m.rc.Write(m.writeFn); err != nil {
		return 0, err
	}
	if m.err != nil {
		return 0, m.err
	}
	return m.n, nil
}

// enableRxqOvfl asks the kernel to attach the socket's drop counter to every
// datagram (SO_RXQ_OVFL, since 2.6.33): the number of datagrams this socket
// dropped because its receive queue was full, exact and per socket, unlike
// the namespace-wide Udp:RcvbufErrors.
func enableRxqOvfl(c *net.UDPConn) error {
	return setsockoptInt(c, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
}

func setsockoptInt(c *net.UDPConn, level, opt, v int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, v) }); err != nil {
		return err
	}
	return serr
}

// setRcvbuf sets SO_RCVBUF, or SO_RCVBUFFORCE past net.core.rmem_max when
// privileged; force matters for small test buffers too, since SO_RCVBUF is
// clamped below only by the kernel minimum.
func setRcvbuf(c *net.UDPConn, n int) error {
	if err := setsockoptInt(c, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err == nil {
		return nil
	}
	return setsockoptInt(c, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}

func setSndbuf(c *net.UDPConn, n int) error {
	if err := setsockoptInt(c, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n); err == nil {
		return nil
	}
	return setsockoptInt(c, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS (include/linux/udp.h):
// 64 since 4.18; 6.x raised it to 128, 64 works everywhere.
const maxGSOSegments = 64

// setGSO attaches a UDP_SEGMENT control message to every slot of a send
// batch: each sendmmsg entry then carries up to maxGSOSegments datagrams of
// size bytes that the kernel splits (on loopback, only at the receiving
// socket), so one traversal of the stack carries many frames.
func (b *mmsgBatch) setGSO(size int) {
	space := unix.CmsgSpace(2)
	for i := range b.hdrs {
		oob := make([]byte, space)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.Level = unix.SOL_UDP
		h.Type = unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
		binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
		b.oobs[i] = oob
		b.hdrs[i].Hdr.Control = &oob[0]
		b.hdrs[i].Hdr.SetControllen(space)
	}
}

// enableGRO asks the kernel to hand coalesced UDP datagrams to recvmsg as one
// buffer with their segment size in a UDP_GRO control message (since 5.0).
func enableGRO(c *net.UDPConn) error {
	return setsockoptInt(c, unix.SOL_UDP, unix.UDP_GRO, 1)
}

// cmsgInfo is what the receiver wants from one datagram's control data.
type cmsgInfo struct {
	ovfl     uint32
	haveOvfl bool
	gsoSize  int
}

// parseCmsgs reads SO_RXQ_OVFL and UDP_GRO from control data without
// allocating.
func parseCmsgs(oob []byte) cmsgInfo {
	var ci cmsgInfo
	const hdr = int(unsafe.Sizeof(unix.Cmsghdr{}))
	for len(oob) >= hdr {
		l := int(binary.NativeEndian.Uint64(oob[0:8]))
		level := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if l < hdr || l > len(oob) {
			break
		}
		switch {
		case level == unix.SOL_SOCKET && typ == unix.SO_RXQ_OVFL && l >= hdr+4:
			ci.ovfl, ci.haveOvfl = binary.NativeEndian.Uint32(oob[hdr:hdr+4]), true
		case level == unix.SOL_UDP && typ == unix.UDP_GRO && l >= hdr+4:
			ci.gsoSize = int(binary.NativeEndian.Uint32(oob[hdr : hdr+4]))
		}
		next := (l + 7) &^ 7
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return ci
}

// rxqOvfl returns the SO_RXQ_OVFL drop counter carried by one datagram's
// control data, and whether it was present. It does not allocate.
func rxqOvfl(oob []byte) (uint32, bool) {
	ci := parseCmsgs(oob)
	return ci.ovfl, ci.haveOvfl
}

// socketDrops reads the socket's drop counter, sk_drops, with SO_MEMINFO
// (since 4.12): the same number SO_RXQ_OVFL carries, read now rather than as
// of the last datagram queued, so drops after the last datagram count too.
// It is what `ss -m` shows as "d".
func socketDrops(c syscall.Conn) (uint64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		mem  [unix.SK_MEMINFO_VARS]uint32
		serr error
	)
	err = rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = fmt.Errorf("getsockopt SO_MEMINFO: %w", e)
		} else if l < uint32((unix.SK_MEMINFO_DROPS+1)*4) {
			serr = errors.New("getsockopt SO_MEMINFO: kernel returned no drop counter")
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return uint64(mem[unix.SK_MEMINFO_DROPS]), nil
}
