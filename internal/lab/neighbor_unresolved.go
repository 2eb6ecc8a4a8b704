package lab

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// neighbor-unresolved: an application keeps sending to an address on its
// own subnet where no host answers ARP. Packets wait in the neighbour
// entry's small queue while the kernel asks; the queue overflows and the
// oldest are discarded (arp_cache unresolved_discards).
//
// The neighbour tables' statistics are shared by all namespaces and shown
// only in the initial one, so this scenario's diagnosis reads the host.
func init() {
	const port = 5013
	absent := netip.MustParseAddr("10.231.0.99")
	register(Scenario{
		Name:       "neighbor-unresolved",
		Stage:      stage.Neighbor,
		Story:      "2000 UDP datagrams to 10.231.0.99, an address on the sender's subnet where nobody answers ARP",
		DiagnoseOn: Host,
		HostWide:   true,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			dst := netip.AddrPortFrom(absent, port)
			return func(ctx context.Context) error {
				r, err := floodUDP(ctx, src, dst, flood{Size: 200, Count: 2000, Spread: 400 * time.Millisecond, Budget: 2 * time.Second})
				if err == nil && r.Sent == 0 {
					err = fmt.Errorf("no datagram was sent")
				}
				return err
			}, nil
		},
	})
}
