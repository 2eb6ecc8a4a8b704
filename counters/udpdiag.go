package counters

import (
	"errors"
	"fmt"

	"github.com/netdrop/netdrop/internal/inetdiag"
	"golang.org/x/sys/unix"
)

// The UDP sockets of a namespace through sock_diag (inet_diag's UDP dump,
// net/ipv4/udp_diag.c): the sockets /proc/net/udp and udp6 print, with the
// same values, in one pass over the UDP hash table. Reading the files walks
// the table from its first bucket again for every page of output
// (udp_seq_start → udp_get_idx), so a namespace of 5,000 sockets costs some
// 150 walks of the whole table, and every namespace's sockets are in that
// one table; the dump resumes where it stopped.

// Values from include/uapi/linux/inet_diag.h and sock_diag.h; the wire
// layer itself is internal/inetdiag, shared with package sockets.
const (
	diagAllStates = 0xffffffff // idiag_states: every sk_state
	sockDiagByFam = 20         // SOCK_DIAG_BY_FAMILY
)

// errUDPDiagNoDrops says the kernel's reply carried no sk_drops (kernels
// before SK_MEMINFO_DROPS): the files have them.
var errUDPDiagNoDrops = errors.New("sock_diag reply without SK_MEMINFO_DROPS")

// udpDiagRequest is the body of the dump request for one address family:
// an inet_diag_req_v2 for UDP, every state, with INET_DIAG_SKMEMINFO.
func udpDiagRequest(family uint8) []byte {
	return inetdiag.EncodeRequest(family, unix.IPPROTO_UDP, diagAllStates, inetdiag.ExtSkmeminfo)
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
	m, err := inetdiag.Decode(b)
	if err != nil {
		return UDPSocket{}, fmt.Errorf("%w: %w", ErrFileParse, err)
	}
	if m.Family != family {
		return UDPSocket{}, fmt.Errorf("%w: address family %d in a dump of %d", ErrFileParse, m.Family, family)
	}
	drops, ok := m.SkmemWord(unix.SK_MEMINFO_DROPS)
	if !ok {
		return UDPSocket{}, errUDPDiagNoDrops
	}
	return UDPSocket{
		Local:   m.Local,
		Remote:  m.Remote,
		State:   m.State,
		RxQueue: uint64(m.RQueue),
		TxQueue: uint64(m.WQueue),
		UID:     m.UID,
		Inode:   uint64(m.Inode),
		Drops:   uint64(drops),
	}, nil
}
