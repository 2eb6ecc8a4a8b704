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
// attributes. Both are pure, live in internal/inetdiag (counters' UDP socket
// source reads the same messages) and are tested here on replies recorded
// from a real kernel.
package sockets

import (
	"encoding/binary"
	"net/netip"

	"github.com/netdrop/netdrop/internal/inetdiag"
	"golang.org/x/sys/unix"
)

// Wire sizes and attribute types, from internal/inetdiag, which holds the
// wire layer counters' UDP socket source shares.
const (
	sockIDLen  = inetdiag.SockIDLen
	reqV2Len   = inetdiag.ReqV2Len
	reqV1Len   = inetdiag.ReqV1Len
	diagMsgLen = inetdiag.MsgLen

	attrMeminfo   = inetdiag.AttrMeminfo
	attrSkmeminfo = inetdiag.AttrSkmeminfo
	attrProtocol  = inetdiag.AttrProtocol
)

// extSkmeminfo is the idiag_ext bit that asks for INET_DIAG_SKMEMINFO.
const extSkmeminfo = inetdiag.ExtSkmeminfo

// AllStates asks for every TCP state. It is the mask ss sends (bits 0..11);
// the kernel adds TCP_NEW_SYN_RECV itself when TCP_SYN_RECV is asked for, and
// reports request sockets as SYN_RECV.
const AllStates StateSet = 0xfff

// encodeRequest builds the body of a SOCK_DIAG_BY_FAMILY dump request: an
// inet_diag_req_v2 for one address family and protocol, the states wanted as
// a bit mask (bit n = TCP state n) and the extensions wanted (idiag_ext).
func encodeRequest(family, proto uint8, states StateSet, ext uint8) []byte {
	return inetdiag.EncodeRequest(family, proto, uint32(states), ext)
}

// encodeRequestV1 builds the body of a TCPDIAG_GETSOCK dump request: an
// inet_diag_req, the layout before inet_diag_req_v2, whose dump the kernel
// runs for TCP sockets of every family (DumpTCP).
func encodeRequestV1(states StateSet, ext uint8) []byte {
	return inetdiag.EncodeRequestV1(uint32(states), ext)
}

// Errors of the decoder; they wrap ErrMalformed so callers can tell a broken
// reply from an I/O error.
var ErrMalformed = inetdiag.ErrMalformed

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
	m, err := inetdiag.Decode(b)
	s := Socket{
		Family:    m.Family,
		Protocol:  m.Protocol,
		State:     State(m.State),
		Timer:     m.Timer,
		Retrans:   m.Retrans,
		Local:     m.Local,
		Remote:    m.Remote,
		Interface: m.Interface,
		Cookie:    m.Cookie,
		Expires:   m.Expires,
		RQueue:    m.RQueue,
		WQueue:    m.WQueue,
		UID:       m.UID,
		Inode:     m.Inode,
	}
	if m.Skmem != nil {
		s.Mem = decodeSkmeminfo(m.Skmem)
		s.HasMem = true
	}
	return s, err
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
