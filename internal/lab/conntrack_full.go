package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/nftables/expr"
	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// conntrack-full: the connection tracking table is full of established
// connections, so every new flow is dropped.
//
// net.netfilter.nf_conntrack_max is one host-wide limit (since Linux 6.x it
// can only be written in the initial namespace) checked against each
// namespace's own count, so the lab lowers it briefly, journalled, and fills
// its own namespace's table. The fill uses TCP connections because
// established TCP entries are "assured": the kernel's early drop, which
// evicts unassured entries to make room, cannot evict them, so a new flow is
// really dropped (stat "drop") instead of displacing an old one.
func init() {
	const (
		tcpPort = 5005
		udpPort = 5006
		max     = 32
	)
	register(Scenario{
		Name:       "conntrack-full",
		Stage:      stage.Conntrack,
		Story:      "nf_conntrack_max lowered to 32, the table filled with established TCP connections, then 2000 new UDP flows",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			// A ct expression turns connection tracking on in the
			// receiver's namespace.
			if err := e.addInputRules(e.Receiver, then(ctStateNew(), expr.VerdictAccept)); err != nil {
				return nil, err
			}
			// The connections wait in the accept queue; nobody needs to
			// accept them for their conntrack entries to stay.
			if _, err := e.listenTCP(e.Receiver, netip.AddrPortFrom(e.Receiver.Addr, tcpPort), 2*max); err != nil {
				return nil, err
			}
			udpDst := netip.AddrPortFrom(e.Receiver.Addr, udpPort)
			// A buffer for every datagram: once a fix lets the flows
			// through, none is lost at the socket instead.
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, intOpt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20, "SO_RCVBUFFORCE"), bindTo(udpDst)); err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			if err := e.SetGlobal("net.netfilter.nf_conntrack_max", strconv.Itoa(max)); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				dst := netip.AddrPortFrom(e.Receiver.Addr, tcpPort)
				filled := 0
				for i := 0; i < max; i++ {
					fd, err := e.socket(e.Sender, unix.SOCK_STREAM, sndTimeout(500*time.Millisecond))
					if err != nil {
						return err
					}
					if err := unix.Connect(fd, sockaddr(dst)); err != nil {
						// The table may already hold a few entries of
						// this namespace; a full table is the point.
						break
					}
					filled++
				}
				if filled == 0 {
					return fmt.Errorf("no TCP connection could be established to fill the table")
				}
				r, err := floodUDP(ctx, src, udpDst, flood{Size: 100, Count: 2000, Spread: 400 * time.Millisecond, Budget: 2 * time.Second})
				if err == nil && r.Sent == 0 {
					err = fmt.Errorf("no datagram was sent")
				}
				return err
			}, nil
		},
	})
}
