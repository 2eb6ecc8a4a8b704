package lab

import (
	"context"

	"github.com/cilium/ebpf"
	"github.com/netdrop/netdrop/stage"
	"github.com/vishvananda/netlink/nl"
)

// xdp-drop: an XDP program on the receiver's veth, attached in generic
// (skb) mode, returns XDP_DROP for one service's datagrams: the first
// hook of the receive path refuses them before the stack sees them. BPF
// run statistics are switched on for the scenario (kernel.bpf_stats_enabled,
// host-wide, journalled) so that the program's run count shows how many
// packets it judged.
func init() {
	const port = 5022
	register(Scenario{
		Name:       "xdp-drop",
		Stage:      stage.XDP,
		Story:      "an XDP program (generic mode) on the receiver's veth drops UDP to port 5022",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			return e.hookDropTraffic(port, "xdp_drop_udp", func(p *ebpf.Program) error {
				if err := e.SetGlobal("kernel.bpf_stats_enabled", "1"); err != nil {
					return err
				}
				return e.attachXDP(e.Receiver, p, nl.XDP_FLAGS_SKB_MODE)
			})
		},
	})
}
