// Package inetdiag is the wire layer of inet_diag (NETLINK_SOCK_DIAG) that
// sockets and counters share: it builds dump requests and reads one
// inet_diag_msg with its attributes, and nothing more. What a socket means
// (states, memory, drops) is left to the callers, so that one decoder serves
// the socket views of sockets and the UDP socket source of counters.
//
// Layouts from include/uapi/linux/inet_diag.h and sock_diag.h.
package inetdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Wire sizes.
const (
	SockIDLen = 48                 // struct inet_diag_sockid
	ReqV2Len  = 8 + SockIDLen      // struct inet_diag_req_v2
	ReqV1Len  = 4 + SockIDLen + 8  // struct inet_diag_req
	MsgLen    = 4 + SockIDLen + 20 // struct inet_diag_msg
)

// Attribute types of an inet_diag_msg reply (enum in inet_diag.h). Only the
// ones netdrop reads are named.
const (
	AttrMeminfo   = 1  // INET_DIAG_MEMINFO: struct inet_diag_meminfo
	AttrSkmeminfo = 7  // INET_DIAG_SKMEMINFO: u32[SK_MEMINFO_VARS]
	AttrProtocol  = 10 // INET_DIAG_PROTOCOL: u8, sent for sockets whose protocol the request did not fix
)

// ExtSkmeminfo is the idiag_ext bit that asks for INET_DIAG_SKMEMINFO: the
// kernel tests ext & (1 << (attr - 1)).
const ExtSkmeminfo = 1 << (AttrSkmeminfo - 1)

// ErrMalformed says a reply is broken, as opposed to an I/O error.
var ErrMalformed = errors.New("malformed inet_diag reply")

// EncodeRequest builds the body of a SOCK_DIAG_BY_FAMILY dump request: an
// inet_diag_req_v2 for one address family and protocol, the states wanted as
// a bit mask (bit n = state n) and the extensions wanted (idiag_ext). The
// socket id is left zero: a dump ignores it.
func EncodeRequest(family, proto uint8, states uint32, ext uint8) []byte {
	b := make([]byte, ReqV2Len)
	b[0] = family
	b[1] = proto
	b[2] = ext
	// b[3] is padding.
	binary.NativeEndian.PutUint32(b[4:8], states)
	return b
}

// EncodeRequestV1 builds the body of a TCPDIAG_GETSOCK dump request: an
// inet_diag_req, the layout before inet_diag_req_v2, whose dump the kernel
// runs for TCP sockets of every family. Its idiag_family is not read; states
// and ext mean what they mean in EncodeRequest.
func EncodeRequestV1(states uint32, ext uint8) []byte {
	b := make([]byte, ReqV1Len)
	// b[0:3]: family, source and destination prefix lengths, unused.
	b[3] = ext
	// b[4:52] is the socket id, zero for a dump.
	binary.NativeEndian.PutUint32(b[4+SockIDLen:], states)
	// The last 4 bytes are idiag_dbs, unused by the kernel.
	return b
}

// Msg is one inet_diag_msg as the kernel sent it, with the attributes
// netdrop reads.
type Msg struct {
	Family  uint8 // unix.AF_INET or unix.AF_INET6
	State   uint8 // idiag_state: the sk_state
	Timer   uint8 // idiag_timer
	Retrans uint8
	Local   netip.AddrPort
	Remote  netip.AddrPort
	// Interface is the bound device index, 0 if none.
	Interface uint32
	// Cookie identifies the socket for its lifetime.
	Cookie  uint64
	Expires uint32 // milliseconds to the pending timer
	RQueue  uint32 // idiag_rqueue
	WQueue  uint32 // idiag_wqueue
	UID     uint32
	Inode   uint32
	// Protocol is INET_DIAG_PROTOCOL, 0 when the kernel did not send it.
	Protocol uint8
	// Skmem is the value of INET_DIAG_SKMEMINFO, as many native-endian
	// u32 as the kernel sent (SK_MEMINFO_*), nil when it sent none. It
	// points into the decoded buffer.
	Skmem []byte
}

// SkmemWord returns word i (unix.SK_MEMINFO_*) of INET_DIAG_SKMEMINFO and
// whether the kernel sent it: the array grew over time, older kernels send
// fewer words.
func (m *Msg) SkmemWord(i int) (uint32, bool) {
	if len(m.Skmem) < 4*(i+1) {
		return 0, false
	}
	return binary.NativeEndian.Uint32(m.Skmem[4*i:]), true
}

// Decode reads the payload of one SOCK_DIAG_BY_FAMILY reply (what follows
// the nlmsghdr): an inet_diag_msg followed by netlink attributes. On error
// the fields read so far are set.
func Decode(b []byte) (Msg, error) {
	var m Msg
	if len(b) < MsgLen {
		return m, fmt.Errorf("%w: %d bytes, inet_diag_msg needs %d", ErrMalformed, len(b), MsgLen)
	}
	m.Family = b[0]
	m.State = b[1]
	m.Timer = b[2]
	m.Retrans = b[3]
	id := b[4 : 4+SockIDLen]
	sport := binary.BigEndian.Uint16(id[0:2])
	dport := binary.BigEndian.Uint16(id[2:4])
	var src, dst netip.Addr
	switch m.Family {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(id[4:8]))
		dst = netip.AddrFrom4([4]byte(id[20:24]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(id[4:20]))
		dst = netip.AddrFrom16([16]byte(id[20:36]))
	default:
		return m, fmt.Errorf("%w: address family %d", ErrMalformed, m.Family)
	}
	m.Local = netip.AddrPortFrom(src, sport)
	m.Remote = netip.AddrPortFrom(dst, dport)
	m.Interface = binary.NativeEndian.Uint32(id[36:40])
	m.Cookie = uint64(binary.NativeEndian.Uint32(id[40:44])) | uint64(binary.NativeEndian.Uint32(id[44:48]))<<32
	rest := b[4+SockIDLen:]
	m.Expires = binary.NativeEndian.Uint32(rest[0:4])
	m.RQueue = binary.NativeEndian.Uint32(rest[4:8])
	m.WQueue = binary.NativeEndian.Uint32(rest[8:12])
	m.UID = binary.NativeEndian.Uint32(rest[12:16])
	m.Inode = binary.NativeEndian.Uint32(rest[16:20])

	attrs := b[MsgLen:]
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return m, fmt.Errorf("%w: %d trailing bytes after attributes", ErrMalformed, len(attrs))
		}
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(attrs) {
			return m, fmt.Errorf("%w: attribute %d length %d with %d bytes left", ErrMalformed, typ, l, len(attrs))
		}
		v := attrs[4:l]
		switch typ {
		case AttrSkmeminfo:
			m.Skmem = v
		case AttrProtocol:
			if len(v) >= 1 {
				m.Protocol = v[0]
			}
		}
		next := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if next > len(attrs) {
			next = len(attrs) // the last attribute may come unpadded
		}
		attrs = attrs[next:]
	}
	return m, nil
}
