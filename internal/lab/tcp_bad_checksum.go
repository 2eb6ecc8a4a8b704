package lab

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// tcp-bad-checksum: a faulty link or middlebox corrupts TCP segments on the
// way; the receiver's TCP discards every one whose checksum does not hold.
// The segments are built by hand on a raw socket so that their checksum is
// wrong on purpose.
func init() {
	const (
		port  = 5011
		count = 1000
	)
	register(Scenario{
		Name:       "tcp-bad-checksum",
		Stage:      stage.TCP,
		Story:      "1000 TCP SYNs to a listening port whose checksums a faulty link has corrupted",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			if _, err := e.listenTCP(e.Receiver, dst, 128); err != nil {
				return nil, err
			}
			// IPPROTO_RAW implies IP_HDRINCL: the lab writes the IP header.
			var raw int
			err := e.Sender.Do(func() error {
				var err error
				raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("raw socket in %s: %w", e.Sender.NS, err)
			}
			e.CloseFd(raw)
			return func(ctx context.Context) error {
				sa := sockaddr(dst)
				start := time.Now()
				for i := 0; i < count; i++ {
					if err := ctx.Err(); err != nil {
						return err
					}
					// Paced over about 0.4 s, like a link that corrupts
					// steadily rather than in one burst.
					if due := start.Add(400 * time.Millisecond * time.Duration(i) / count); time.Until(due) > 0 && i%50 == 0 {
						if err := sleepCtx(ctx, time.Until(due)); err != nil {
							return err
						}
					}
					pkt := corruptSYN(e.Sender.Addr, dst, uint16(20000+i), uint32(i)*7919)
					if err := unix.Sendto(raw, pkt, 0, sa); err != nil {
						return fmt.Errorf("send corrupted segment: %w", err)
					}
				}
				return nil
			}, nil
		},
	})
}

// corruptSYN builds an IPv4 packet carrying a TCP SYN from src:sport to dst
// whose TCP checksum is the correct one with one bit flipped. The kernel
// fills in the IP header checksum (and the id when zero) of IP_HDRINCL
// packets.
func corruptSYN(src netip.Addr, dst netip.AddrPort, sport uint16, seq uint32) []byte {
	const ipLen, tcpLen = 20, 20
	p := make([]byte, ipLen+tcpLen)
	p[0] = 0x45 // version 4, header 5 words
	binary.BigEndian.PutUint16(p[2:], ipLen+tcpLen)
	binary.BigEndian.PutUint16(p[6:], 0x4000) // don't fragment
	p[8] = 64                                 // ttl
	p[9] = unix.IPPROTO_TCP
	s, d := src.As4(), dst.Addr().As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	t := p[ipLen:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	t[12] = 5 << 4 // data offset
	t[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(t[14:], 64240)
	binary.BigEndian.PutUint16(t[16:], tcpChecksum(s, d, t)^0x0001)
	return p
}

// tcpChecksum is the RFC 793 checksum of a TCP segment (checksum field
// zero) with its IPv4 pseudo-header.
func tcpChecksum(src, dst [4]byte, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = (sum >> 16) + (sum & 0xffff)
	}
	return ^uint16(sum)
}
