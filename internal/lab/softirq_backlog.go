package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/netdrop/netdrop/stage"
	"golang.org/x/sys/unix"
)

// softirq-backlog: a per-CPU input backlog too small for a burst that RPS
// steers onto one CPU.
//
// A veth delivers what it transmits through the per-CPU backlog
// (netif_rx). Without steering, the sender's own CPU drains that backlog at
// once in the softirq that follows each send, and nothing drops. With RPS
// sending the receive work to another CPU, the sender fills that CPU's
// backlog faster than it is processed, and once it holds
// net.core.netdev_max_backlog packets the rest are dropped (softnet_stat
// "dropped"). netdev_max_backlog is host-wide, so the lab lowers it only for
// the length of the flood, journalled.
func init() {
	const (
		port    = 5007
		backlog = 1
		count   = 100000
		budget  = time.Second
	)
	register(Scenario{
		Name:       "softirq-backlog",
		Stage:      stage.Softirq,
		Story:      "netdev_max_backlog lowered to 1 and a UDP flood over the veth steered by RPS to another CPU",
		DiagnoseOn: Receiver,
		HostWide:   true,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			from, to, err := twoCPUs()
			if err != nil {
				return nil, err
			}
			mask := strconv.FormatUint(1<<uint(to), 16)
			if err := e.Receiver.WriteSysfs(fmt.Sprintf("class/net/%s/queues/rx-0/rps_cpus", e.Receiver.Link), mask); err != nil {
				return nil, fmt.Errorf("steer receive work to cpu %d with RPS: %w", to, err)
			}
			dst := netip.AddrPortFrom(e.Receiver.Addr, port)
			// A receiver with a buffer large enough for the whole flood
			// (100000 datagrams of about 800 bytes of truesize each), so
			// that what gets past the backlog is delivered, not lost at
			// the socket.
			if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM,
				intOpt(unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20, "SO_RCVBUFFORCE"),
				bindTo(dst)); err != nil {
				return nil, err
			}
			src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
			if err != nil {
				return nil, err
			}
			if err := e.SetGlobal("net.core.netdev_max_backlog", strconv.Itoa(backlog)); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				var r sendResult
				err := pinToCPU(from, func() error {
					var err error
					r, err = floodUDP(ctx, src, dst, flood{Size: 64, Count: count, Budget: budget})
					return err
				})
				if err == nil && r.Sent == 0 {
					err = fmt.Errorf("no datagram was sent")
				}
				return err
			}, nil
		},
	})
}

// twoCPUs picks two CPUs this process may run on: one to send from, one to
// receive on.
func twoCPUs() (from, to int, err error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0, 0, fmt.Errorf("cpu affinity: %w", err)
	}
	var cpus []int
	for i := 0; i < 1024 && len(cpus) < 2; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return 0, 0, fmt.Errorf("needs two CPUs to steer receive work away from the sender (this process may use %d)", set.Count())
	}
	return cpus[0], cpus[1], nil
}
