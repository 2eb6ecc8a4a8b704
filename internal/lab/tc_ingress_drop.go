package lab

import (
	"context"

	"github.com/cilium/ebpf"
	"github.com/netdrop/netdrop/stage"
)

// tc-ingress-drop: an eBPF program in a clsact ingress filter on the
// receiver's veth returns TC_ACT_SHOT for one service's datagrams, as the
// policy programs of eBPF datapaths do. The loss is on the receive side;
// the transmit queue has nothing to do with it.
func init() {
	const port = 5021
	register(Scenario{
		Name:       "tc-ingress-drop",
		Stage:      stage.TCIngress,
		Story:      "a tc ingress eBPF filter (clsact, direct-action) on the receiver drops UDP to port 5021",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			return e.hookDropTraffic(port, "tc_drop_udp", func(p *ebpf.Program) error {
				return e.addTCIngressBPF(e.Receiver, p, "ndlab_tc_drop")
			})
		},
	})
}
