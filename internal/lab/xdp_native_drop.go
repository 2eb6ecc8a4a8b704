package lab

import (
	"context"

	"github.com/cilium/ebpf"
	"github.com/netdrop/netdrop/stage"
	"github.com/vishvananda/netlink/nl"
)

// xdp-native-drop: the same XDP program attached in native (driver) mode,
// which veth supports. On a hardware NIC a native XDP drop frees no socket
// buffer, so the tracer cannot see it and the driver's XDP counters (ethtool
// -S: rx_queue_N_xdp_drops on veth) are the evidence; veth runs XDP on the
// skb it was handed, so here both see it and must agree.
func init() {
	const port = 5023
	register(Scenario{
		Name:       "xdp-native-drop",
		Stage:      stage.XDP,
		Story:      "an XDP program in native (driver) mode on the receiver's veth drops UDP to port 5023",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			return e.hookDropTraffic(port, "xdp_drop_udp", func(p *ebpf.Program) error {
				return e.attachXDP(e.Receiver, p, nl.XDP_FLAGS_DRV_MODE)
			})
		},
	})
}
