package counters

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The UDP sockets of a namespace through sock_diag (inet_diag's UDP dump,
// net/ipv4/udp_diag.c): the sockets /proc/net/udp and udp6 print, with the
// same values, in one pass over the UDP hash table. Reading the files walks
// the table from its first bucket again for every page of output
// (udp_seq_start → udp_get_idx), so a namespace of 5,000 sockets costs some
// 150 walks of the whole table, and every namespace's sockets are in that
// one table; the dump resumes where it stopped.

// Wire sizes and values from include/uapi/linux/inet_diag.h and
// sock_diag.h.
const (
	diagSockIDLen  = 48                     // struct inet_diag_sockid
	diagReqV2Len   = 8 + diagSockIDLen      // struct inet_diag_req_v2
	diagMsgLen     = 4 + diagSockIDLen + 20 // struct inet_diag_msg
	diagSkmeminfo  = 7                      // INET_DIAG_SKMEMINFO: u32[SK_MEMINFO_VARS]
	diagAllStates  = 0xffffffff             // idiag_states: every sk_state
	sockDiagByFam  = 20                     // SOCK_DIAG_BY_FAMILY
	diagExtSkmem   = 1 << (diagSkmeminfo - 1)
	skmemDropsWord = unix.SK_MEMINFO_DROPS
)

// errUDPDiagNoDrops says the kernel's reply carried no sk_drops (kernels
// before SK_MEMINFO_DROPS): the files have them.
var errUDPDiagNoDrops = errors.New("sock_diag reply without SK_MEMINFO_DROPS")

// udpDiagRequest is the body of the dump request for one address family:
// an inet_diag_req_v2 for UDP, every state, with INET_DIAG_SKMEMINFO.
func udpDiagRequest(family uint8) []byte {
	b := make([]byte, diagReqV2Len)
	b[0] = family
	b[1] = unix.IPPROTO_UDP
	b[2] = diagExtSkmem
	binary.NativeEndian.PutUint32(b[4:8], diagAllStates)
	return b
}

// readUDPDiag reads the UDP sockets of the calling thread's namespace,
// IPv4 as "udp" then IPv6 as "udp6", as ReadUDPSockets does from the files.
// Any error (no udp_diag in this kernel, an interrupted dump, a reply
// without drops) means the files must be read instead.
func readUDPDiag(dial dialer) ([]UDPSocket, error) {
	var out []UDPSocket
	for _, f := range []struct {
		family uint8
		proto  string
	}{{unix.AF_INET, "udp"}, {unix.AF_INET6, "udp6"}} {
		err := netlinkDump(dial, unix.NETLINK_SOCK_DIAG, sockDiagByFam, udpDiagRequest(f.family), func(typ uint16, data []byte) error {
			if typ != sockDiagByFam {
				return nil
			}
			k, err := decodeUDPDiag(data, f.family)
			if err != nil {
				return err
			}
			k.Proto = f.proto
			out = append(out, k)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sock_diag udp (%s): %w", f.proto, err)
		}
	}
	return out, nil
}

// decodeUDPDiag reads one inet_diag_msg of the UDP dump and its
// INET_DIAG_SKMEMINFO into what the /proc line gives: addresses and ports,
// state, queues (udp_rqueue_get and sk_wmem_alloc_get there and here), uid,
// inode and sk_drops.
func decodeUDPDiag(b []byte, family uint8) (UDPSocket, error) {
	var k UDPSocket
	if len(b) < diagMsgLen {
		return k, fmt.Errorf("%w: inet_diag_msg of %d bytes, want %d", ErrFileParse, len(b), diagMsgLen)
	}
	if b[0] != family {
		return k, fmt.Errorf("%w: address family %d in a dump of %d", ErrFileParse, b[0], family)
	}
	k.State = b[1]
	id := b[4 : 4+diagSockIDLen]
	sport, dport := binary.BigEndian.Uint16(id[0:2]), binary.BigEndian.Uint16(id[2:4])
	var src, dst netip.Addr
	if family == unix.AF_INET {
		src, dst = netip.AddrFrom4([4]byte(id[4:8])), netip.AddrFrom4([4]byte(id[20:24]))
	} else {
		src, dst = netip.AddrFrom16([16]byte(id[4:20])), netip.AddrFrom16([16]byte(id[20:36]))
	}
	k.Local, k.Remote = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	rest := b[4+diagSockIDLen : diagMsgLen]
	k.RxQueue = uint64(binary.NativeEndian.Uint32(rest[4:8]))
	k.TxQueue = uint64(binary.NativeEndian.Uint32(rest[8:12]))
	k.UID = binary.NativeEndian.Uint32(rest[12:16])
	k.Inode = uint64(binary.NativeEndian.Uint32(rest[16:20]))
	drops := false
	for attrs := b[diagMsgLen:]; len(attrs) >= 4; {
		l := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(attrs) {
			return k, fmt.Errorf("%w: attribute %d of length %d with %d bytes left", ErrFileParse, typ, l, len(attrs))
		}
		if v := attrs[4:l]; typ == diagSkmeminfo && len(v) >= 4*(skmemDropsWord+1) {
			k.Drops = uint64(binary.NativeEndian.Uint32(v[4*skmemDropsWord:]))
			drops = true
		}
		attrs = attrs[min(len(attrs), (l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1)):]
	}
	if !drops {
		return k, errUDPDiagNoDrops
	}
	return k, nil
}
