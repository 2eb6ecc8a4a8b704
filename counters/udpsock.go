package counters

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strconv"
	"strings"
)

// The UDP socket tables of a network namespace. Their last column is the
// socket's drop count (sk_drops, the SK_MEMINFO_DROPS that `ss -m` shows as
// "d"): which socket lost the datagrams that Udp RcvbufErrors counts.

func init() { register(UDPSource{}) }

// UDPSocket is one line of /proc/net/udp or udp6.
type UDPSocket struct {
	// Proto is "udp" or "udp6".
	Proto  string
	Local  netip.AddrPort
	Remote netip.AddrPort
	// State is the kernel's TCP_* state number: 7 (CLOSE) for an unconnected
	// socket, 1 (ESTABLISHED) for a connected one.
	State   uint8
	TxQueue uint64
	// RxQueue is the memory queued for reading, in bytes (sk_rmem_alloc).
	RxQueue uint64
	UID     uint32
	Inode   uint64
	// Drops is the socket's drop count since it was created.
	Drops uint64
}

// UDPSource adds a counter for every UDP socket that has dropped datagrams,
// named "udp 0.0.0.0:5353 inode N" with field "drops". Sockets without drops
// are left out: a delta counts a socket that appears later from zero, so
// nothing is lost, and busy hosts have many thousands of sockets.
type UDPSource struct{}

// ID implements Source.
func (UDPSource) ID() SourceID { return ProcNetUDP }

// Collect implements Source.
func (UDPSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	socks, err := r.udpSockets()
	if len(socks) == 0 && err != nil {
		return err
	}
	s.Add(udpDropCounters(socks)...)
	if err != nil {
		s.Fail(ProcNetUDP, err)
	}
	return nil
}

// ReadUDPSockets reads the UDP sockets of the current network namespace from
// /proc/net/udp and udp6. udp6 is missing when IPv6 is disabled; that is not
// an error. What could be read is returned with the errors of the rest.
func ReadUDPSockets(fsys FS) ([]UDPSocket, error) {
	var out []UDPSocket
	var errs []error
	for _, f := range []struct {
		name        SourceID
		file, proto string
	}{{ProcNetUDP, "udp", "udp"}, {ProcNetUDP6, "udp6", "udp6"}} {
		socks, err := readSource(fsys, f.name, fsys.NetPath(f.file), func(r io.Reader) ([]UDPSocket, error) {
			return parseUDPSockets(&seqFileReader{r: r})
		})
		for i := range socks {
			socks[i].Proto = f.proto
		}
		out = append(out, socks...)
		if err != nil && !(f.proto == "udp6" && errors.Is(err, fs.ErrNotExist)) {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// udpSockets reads the UDP sockets of the snapshot's namespace: through
// sock_diag when the snapshot is of the running kernel (udpdiag.go: one
// pass over the UDP hash table, where the files cost one per page), from
// /proc/net/udp and udp6 otherwise, or when the kernel cannot answer.
func (r *Reading) udpSockets() ([]UDPSocket, error) {
	if r.FS == DefaultFS() {
		if socks, err := readUDPDiag(r.dialer()); err == nil {
			return socks, nil
		}
	}
	return ReadUDPSockets(r.FS)
}

func udpDropCounters(socks []UDPSocket) []Counter {
	var out []Counter
	for _, k := range socks {
		if k.Drops == 0 {
			continue
		}
		src := ProcNetUDP
		if k.Proto == "udp6" {
			src = ProcNetUDP6
		}
		out = append(out, Counter{
			Source: src,
			Object: fmt.Sprintf("%s %s inode %d", k.Proto, k.Local, k.Inode),
			Field:  "drops",
			Value:  k.Drops,
			Stage:  stageOf(src, "drops"),
		})
	}
	return out
}

// parseUDPSockets reads /proc/net/udp or udp6 (net/ipv4/udp.c,
// udp4_format_sock; net/ipv6/datagram.c, __ip6_dgram_sock_seq_show):
//
//	sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ref pointer drops
//
// Addresses are the in-memory words of the address printed as host-order
// hex, so they are decoded with the machine's byte order; ports are printed
// in host order. A malformed line is reported and skipped.
func parseUDPSockets(r io.Reader) ([]UDPSocket, error) {
	var out []UDPSocket
	buf := getFields()
	defer func() { putFields(buf) }()
	err := scanLines(r, func(n int, line string) error {
		f := appendFields(buf[:0], line)
		buf = f
		if len(f) == 0 || (n == 1 && f[0] == "sl") {
			return nil
		}
		if len(f) < 13 {
			return lineError(n, "%d columns, want 13", len(f))
		}
		var k UDPSocket
		var err error
		if k.Local, err = parseHexAddrPort(f[1]); err != nil {
			return lineError(n, "local address: %v", err)
		}
		if k.Remote, err = parseHexAddrPort(f[2]); err != nil {
			return lineError(n, "remote address: %v", err)
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return lineError(n, "state %q is not hex", f[3])
		}
		k.State = uint8(st)
		tx, rx, ok := strings.Cut(f[4], ":")
		if !ok {
			return lineError(n, "queues %q are not tx:rx", f[4])
		}
		if k.TxQueue, err = strconv.ParseUint(tx, 16, 64); err != nil {
			return lineError(n, "tx_queue %q is not hex", tx)
		}
		if k.RxQueue, err = strconv.ParseUint(rx, 16, 64); err != nil {
			return lineError(n, "rx_queue %q is not hex", rx)
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return lineError(n, "uid %q is not a number", f[7])
		}
		k.UID = uint32(uid)
		if k.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
			return lineError(n, "inode %q is not a number", f[9])
		}
		if k.Drops, err = strconv.ParseUint(f[12], 10, 64); err != nil {
			return lineError(n, "drops %q is not a number", f[12])
		}
		out = append(out, k)
		return nil
	})
	return out, err
}

// parseHexAddrPort decodes "0100007F:B715" or a 32-digit IPv6 address with
// its port.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q has no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q is not hex", p)
	}
	if len(a) != 8 && len(a) != 32 {
		return netip.AddrPort{}, fmt.Errorf("address %q has %d hex digits, want 8 or 32", a, len(a))
	}
	b := make([]byte, 0, 16)
	for i := 0; i < len(a); i += 8 {
		w, err := strconv.ParseUint(a[i:i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("address %q is not hex", a)
		}
		b = binary.NativeEndian.AppendUint32(b, uint32(w))
	}
	addr, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
