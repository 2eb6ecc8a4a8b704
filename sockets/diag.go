// Package sockets reads the kernel's socket tables through sock_diag
// (NETLINK_SOCK_DIAG, inet_diag) and turns them into the views netdrop needs:
// a count per family and state, TIME_WAIT and client sockets per destination
// against the ephemeral port range, listeners with their accept-queue fill,
// and sockets that drop packets or whose receive queue is near its buffer,
// each with the process that owns it.
//
// It streams the dump: one socket at a time is decoded and folded into the
// views, so memory stays bounded with hundreds of thousands of sockets. It
// never shells out to ss; ss is only the reference the tests compare with.
//
// The wire layer is split as the kernel defines it: encodeRequest builds an
// inet_diag_req_v2 and decodeMessage reads one inet_diag_msg with its
// attributes. Both are pure and tested on replies recorded from a real kernel.
package sockets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Wire sizes from include/uapi/linux/inet_diag.h.
const (
	sockIDLen  = 48                 // struct inet_diag_sockid
	reqV2Len   = 8 + sockIDLen      // struct inet_diag_req_v2
	reqV1Len   = 4 + sockIDLen + 8  // struct inet_diag_req
	diagMsgLen = 4 + sockIDLen + 20 // struct inet_diag_msg
)

// Attribute types of an inet_diag_msg reply (enum in inet_diag.h). Only the
// ones netdrop reads are named.
const (
	attrMeminfo   = 1  // INET_DIAG_MEMINFO: struct inet_diag_meminfo
	attrSkmeminfo = 7  // INET_DIAG_SKMEMINFO: u32[SK_MEMINFO_VARS]
	attrProtocol  = 10 // INET_DIAG_PROTOCOL: u8, sent for sockets whose protocol the request did not fix
)

// extSkmeminfo is the idiag_ext bit that asks for INET_DIAG_SKMEMINFO: the
// kernel tests ext & (1 << (attr - 1)).
const extSkmeminfo = 1 << (attrSkmeminfo - 1)

// AllStates asks for every TCP state. It is the mask ss sends (bits 0..11);
// the kernel adds TCP_NEW_SYN_RECV itself when TCP_SYN_RECV is asked for, and
// reports request sockets as SYN_RECV.
const AllStates StateSet = 0xfff

// encodeRequest builds the body of a SOCK_DIAG_BY_FAMILY dump request: an
// inet_diag_req_v2 for one address family and protocol, the states wanted as
// a bit mask (bit n = TCP state n) and the extensions wanted (idiag_ext).
// The socket id is left zero: a dump ignores it.
func encodeRequest(family, proto uint8, states StateSet, ext uint8) []byte {
	b := make([]byte, reqV2Len)
	b[0] = family
	b[1] = proto
	b[2] = ext
	// b[3] is padding.
	binary.NativeEndian.PutUint32(b[4:8], uint32(states))
	return b
}

// encodeRequestV1 builds the body of a TCPDIAG_GETSOCK dump request: an
// inet_diag_req, the layout before inet_diag_req_v2, whose dump the kernel
// runs for TCP sockets of every family (DumpTCP). Its idiag_family is not
// read; states and ext mean what they mean in encodeRequest.
func encodeRequestV1(states StateSet, ext uint8) []byte {
	b := make([]byte, reqV1Len)
	// b[0:3]: family, source and destination prefix lengths, unused.
	b[3] = ext
	// b[4:52] is the socket id, zero for a dump.
	binary.NativeEndian.PutUint32(b[4+sockIDLen:], uint32(states))
	// The last 4 bytes are idiag_dbs, unused by the kernel.
	return b
}

// Errors of the decoder; they wrap ErrMalformed so callers can tell a broken
// reply from an I/O error.
var ErrMalformed = errors.New("malformed inet_diag reply")

// MemInfo is the socket's memory accounting as the kernel reports it in
// INET_DIAG_SKMEMINFO (sk_meminfo in net/core/sock.c), in bytes except Drops.
type MemInfo struct {
	RmemAlloc  uint32 `json:"rmem_alloc"`  // bytes queued for reading (skb truesize)
	Rcvbuf     uint32 `json:"rcvbuf"`      // SO_RCVBUF: the limit RmemAlloc is held to
	WmemAlloc  uint32 `json:"wmem_alloc"`  // bytes sent, not yet freed
	Sndbuf     uint32 `json:"sndbuf"`      // SO_SNDBUF
	FwdAlloc   uint32 `json:"fwd_alloc"`   // memory reserved ahead
	WmemQueued uint32 `json:"wmem_queued"` // bytes queued for sending
	Optmem     uint32 `json:"optmem"`      // option memory
	Backlog    uint32 `json:"backlog"`     // bytes in the socket backlog (socket owned by user)
	// Drops is sk_drops: packets dropped on this socket, for a full
	// receive buffer, a full backlog, a filter, or (for a TCP listener)
	// a full accept queue. It exists since Linux 3.x; HasDrops says
	// whether the kernel sent it.
	Drops    uint32 `json:"drops"`
	HasDrops bool   `json:"-"`
}

// Socket is one entry of an inet_diag dump.
type Socket struct {
	Family   uint8 // unix.AF_INET or unix.AF_INET6
	Protocol uint8 // unix.IPPROTO_TCP or unix.IPPROTO_UDP (from the request unless the kernel says)
	State    State
	Timer    uint8 // idiag_timer: which timer is pending
	Retrans  uint8
	Local    netip.AddrPort
	Remote   netip.AddrPort
	// Interface is the bound device index, 0 if none.
	Interface uint32
	// Cookie identifies the socket for its lifetime, across dumps.
	Cookie uint64
	// Expires is the time to the pending timer, in milliseconds.
	Expires uint32
	// RQueue and WQueue are idiag_rqueue and idiag_wqueue. For a TCP
	// listener they are the accept queue length and its limit (the
	// backlog); for other TCP sockets unread and unacknowledged bytes;
	// for UDP the bytes queued to read and to send.
	RQueue uint32
	WQueue uint32
	UID    uint32
	// Inode is the socket's inode, the key to its owning process in
	// /proc/PID/fd; 0 for TIME_WAIT and request sockets, which no
	// process owns.
	Inode uint32
	// Mem is INET_DIAG_SKMEMINFO; HasMem is false when the kernel sent
	// none (TIME_WAIT and SYN_RECV request sockets).
	Mem    MemInfo
	HasMem bool
}

// decodeMessage reads the payload of one SOCK_DIAG_BY_FAMILY reply (what
// follows the nlmsghdr): an inet_diag_msg followed by netlink attributes.
func decodeMessage(b []byte) (Socket, error) {
	var s Socket
	if len(b) < diagMsgLen {
		return s, fmt.Errorf("%w: %d bytes, inet_diag_msg needs %d", ErrMalformed, len(b), diagMsgLen)
	}
	s.Family = b[0]
	s.State = State(b[1])
	s.Timer = b[2]
	s.Retrans = b[3]
	id := b[4 : 4+sockIDLen]
	sport := binary.BigEndian.Uint16(id[0:2])
	dport := binary.BigEndian.Uint16(id[2:4])
	var src, dst netip.Addr
	switch s.Family {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(id[4:8]))
		dst = netip.AddrFrom4([4]byte(id[20:24]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(id[4:20]))
		dst = netip.AddrFrom16([16]byte(id[20:36]))
	default:
		return s, fmt.Errorf("%w: address family %d", ErrMalformed, s.Family)
	}
	s.Local = netip.AddrPortFrom(src, sport)
	s.Remote = netip.AddrPortFrom(dst, dport)
	s.Interface = binary.NativeEndian.Uint32(id[36:40])
	s.Cookie = uint64(binary.NativeEndian.Uint32(id[40:44])) | uint64(binary.NativeEndian.Uint32(id[44:48]))<<32
	rest := b[4+sockIDLen:]
	s.Expires = binary.NativeEndian.Uint32(rest[0:4])
	s.RQueue = binary.NativeEndian.Uint32(rest[4:8])
	s.WQueue = binary.NativeEndian.Uint32(rest[8:12])
	s.UID = binary.NativeEndian.Uint32(rest[12:16])
	s.Inode = binary.NativeEndian.Uint32(rest[16:20])

	attrs := b[diagMsgLen:]
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return s, fmt.Errorf("%w: %d trailing bytes after attributes", ErrMalformed, len(attrs))
		}
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(attrs) {
			return s, fmt.Errorf("%w: attribute %d length %d with %d bytes left", ErrMalformed, typ, l, len(attrs))
		}
		v := attrs[4:l]
		switch typ {
		case attrSkmeminfo:
			s.Mem = decodeSkmeminfo(v)
			s.HasMem = true
		case attrProtocol:
			if len(v) >= 1 {
				s.Protocol = v[0]
			}
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(attrs) {
			next = len(attrs) // the last attribute may come unpadded
		}
		attrs = attrs[next:]
	}
	return s, nil
}

// decodeSkmeminfo reads as many u32 as the kernel sent. The array grew over
// time (SK_MEMINFO_BACKLOG in 3.x, SK_MEMINFO_DROPS in 4.x); older kernels
// send fewer and the missing fields stay zero.
func decodeSkmeminfo(v []byte) MemInfo {
	var m MemInfo
	fields := []*uint32{&m.RmemAlloc, &m.Rcvbuf, &m.WmemAlloc, &m.Sndbuf, &m.FwdAlloc, &m.WmemQueued, &m.Optmem, &m.Backlog, &m.Drops}
	for i, f := range fields {
		if len(v) < 4*(i+1) {
			break
		}
		*f = binary.NativeEndian.Uint32(v[4*i : 4*i+4])
		if i == unix.SK_MEMINFO_DROPS {
			m.HasDrops = true
		}
	}
	return m
}
