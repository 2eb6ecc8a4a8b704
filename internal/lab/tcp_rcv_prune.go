package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/google/nftables/expr"
	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// tcp-rcv-prune: a TCP receiver whose application set a small SO_RCVBUF
// (16 KiB once the kernel doubles it, which also turns autotuning off), and
// a peer whose segments arrive with holes: the path lost every other one.
// What arrives after a hole waits in the out-of-order queue, and each small
// segment costs the buffer far more (its skb's truesize) than the bytes it
// carries, so the queue overruns the buffer long before the advertised
// window is used up. For every further segment the kernel prunes the
// receive queue (PruneCalled), finds nothing it can collapse or prune
// (OfoPruned, RcvPruned) and drops the segment (TCPOFODrop, reason
// PROTO_MEM at tcp_data_queue_ofo).
//
// The peer is written by hand on a raw socket, so the holes, the segment
// sizes and their order are the same on every run: a kernel sender would
// retransmit into the holes, and how much arrives out of order would depend
// on timing. The sender namespace's own TCP would answer the receiver's
// SYN-ACK and duplicate ACKs with resets; an output rule there drops them.
func init() {
	const (
		port = 5021
		// rcvbuf is the application's SO_RCVBUF; the kernel doubles it.
		rcvbuf = 8192
		// payload bytes per segment, and the distance between the
		// starts of two segments: a hole of the same size follows each.
		payload = 10
		stride  = 2 * payload
		// segments at most, within the window the receiver advertised.
		segments = 400
	)
	var sport atomic.Uint32
	sport.Store(41000)
	register(Scenario{
		Name:       "tcp-rcv-prune",
		Stage:      stage.SocketRcvbuf,
		Story:      "a TCP receiver with a 16 KiB SO_RCVBUF gets 400 10-byte segments with a hole before each (the path lost every other one): the out-of-order queue overruns the buffer and the kernel prunes it and drops",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			ln, err := e.listenTCP(e.Receiver, dst, 8, intOpt(unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf, "SO_RCVBUF"))
			if err != nil {
				return nil, err
			}
			if err := unix.SetNonblock(ln, true); err != nil {
				return nil, err
			}
			// The sender's TCP has no socket for the hand-written
			// connection and would reset it.
			if err := e.addOutputRules(e.Sender, then(matchTCPRst(port), expr.VerdictDrop)); err != nil {
				return nil, err
			}
			var raw, sniff int
			err = e.Sender.Do(func() error {
				var err error
				// IPPROTO_RAW implies IP_HDRINCL: the lab writes the IP header.
				if raw, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
					return err
				}
				e.CloseFd(raw)
				// A raw TCP socket gets a copy of every TCP segment
				// the namespace receives: the SYN-ACK is read there.
				if sniff, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP); err != nil {
					return err
				}
				e.CloseFd(sniff)
				return rcvTimeout(50 * time.Millisecond)(sniff)
			})
			if err != nil {
				return nil, fmt.Errorf("raw sockets in %s: %w", e.Sender.NS, err)
			}
			return func(ctx context.Context) error {
				src := netip.AddrPortFrom(e.Sender.Addr, uint16(sport.Add(1)))
				p := peer{raw: raw, sniff: sniff, src: src, dst: dst, iss: 1_000_000}
				rwnd, err := p.connect(ctx)
				if err != nil {
					return err
				}
				// The application accepts the connection and never
				// reads: nothing it could read arrives anyway.
				if err := acceptOne(ctx, e, ln); err != nil {
					return err
				}
				n := min(segments, (int(rwnd)-payload)/stride)
				if n < segments/2 {
					return fmt.Errorf("the receiver advertised a window of %d bytes, room for %d segments", rwnd, n)
				}
				data := make([]byte, payload)
				for i := range n {
					if i%50 == 0 {
						if err := sleepCtx(ctx, time.Millisecond); err != nil {
							return err
						}
					}
					data[0] = byte(i)
					if err := p.send(uint32(payload+i*stride), tcpACK, data); err != nil {
						return err
					}
				}
				// Let the receiver's softirq work through the last ones.
				return sleepCtx(ctx, 100*time.Millisecond)
			}, nil
		},
	})
}

// TCP header flags.
const (
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// peer is one end of a TCP connection written by hand: raw sends IPv4
// packets with their header, sniff receives what comes back.
type peer struct {
	raw, sniff int
	src, dst   netip.AddrPort
	iss, irs   uint32 // initial sequence numbers: ours, the receiver's
}

// connect makes the three-way handshake and returns the window the
// receiver advertised in its SYN-ACK (no window scaling is offered, so it
// is in bytes).
func (p *peer) connect(ctx context.Context) (uint16, error) {
	// MSS option 1460: the receiver's segments would be that size.
	if err := p.sendRaw(p.iss, 0, tcpSYN, []byte{2, 4, 0x05, 0xb4}, nil); err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, _, err := unix.Recvfrom(p.sniff, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return 0, fmt.Errorf("read the SYN-ACK: %w", err)
		}
		seq, win, ok := p.synAck(buf[:n])
		if !ok {
			continue
		}
		p.irs = seq
		return win, p.sendRaw(p.iss+1, p.irs+1, tcpACK, nil, nil)
	}
	return 0, fmt.Errorf("no SYN-ACK from %s within 2s", p.dst)
}

// synAck parses pkt (an IPv4 packet) and returns its sequence number and
// window when it is the receiver's SYN-ACK to this peer.
func (p *peer) synAck(pkt []byte) (seq uint32, win uint16, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_TCP {
		return 0, 0, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	t := pkt[ihl:]
	if len(t) < 20 {
		return 0, 0, false
	}
	src, dst := [4]byte(pkt[12:16]), [4]byte(pkt[16:20])
	if netip.AddrFrom4(src) != p.dst.Addr() || netip.AddrFrom4(dst) != p.src.Addr() ||
		binary.BigEndian.Uint16(t[0:]) != p.dst.Port() || binary.BigEndian.Uint16(t[2:]) != p.src.Port() ||
		t[13]&(tcpSYN|tcpACK) != tcpSYN|tcpACK || binary.BigEndian.Uint32(t[8:]) != p.iss+1 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(t[4:]), binary.BigEndian.Uint16(t[14:]), true
}

// send sends data at offset off of the stream (0 is the first byte after
// the SYN), acknowledging the receiver's SYN.
func (p *peer) send(off uint32, flags byte, data []byte) error {
	return p.sendRaw(p.iss+1+off, p.irs+1, flags, nil, data)
}

func (p *peer) sendRaw(seq, ack uint32, flags byte, opts, data []byte) error {
	pkt := tcpPacket(p.src, p.dst, seq, ack, flags, opts, data)
	if err := unix.Sendto(p.raw, pkt, 0, sockaddr(p.dst)); err != nil {
		return fmt.Errorf("send a segment to %s: %w", p.dst, err)
	}
	return nil
}

// tcpPacket builds an IPv4 packet carrying one TCP segment with a correct
// checksum; the kernel fills in the IP header's checksum and id. The
// window offered is 65535 bytes.
func tcpPacket(src, dst netip.AddrPort, seq, ack uint32, flags byte, opts, data []byte) []byte {
	const ipLen = 20
	tcpLen := 20 + len(opts)
	p := make([]byte, ipLen+tcpLen+len(data))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[6:], 0x4000) // don't fragment
	p[8] = 64
	p[9] = unix.IPPROTO_TCP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	t := p[ipLen:]
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	if flags&tcpACK != 0 {
		binary.BigEndian.PutUint32(t[8:], ack)
	}
	t[12] = byte(tcpLen/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[20:], opts)
	copy(t[tcpLen:], data)
	binary.BigEndian.PutUint16(t[16:], tcpChecksum(s, d, t))
	return p
}

// acceptOne accepts the connection waiting on the non-blocking listener
// ln, within a second, and registers it for closing.
func acceptOne(ctx context.Context, e *Env, ln int) error {
	deadline := time.Now().Add(time.Second)
	for {
		fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
		if err == nil {
			e.CloseFd(fd)
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("accept: %w", err)
		}
		if time.Now().After(deadline) {
			return errors.New("the handshake did not complete: nothing to accept within 1s")
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return err
		}
	}
}

// matchTCPRst is `tcp dport PORT tcp flags & rst == rst`.
func matchTCPRst(port uint16) []expr.Any {
	return append(matchDport(unix.IPPROTO_TCP, port),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpRST}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
	)
}
