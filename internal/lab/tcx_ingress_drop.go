package lab

import (
	"context"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/netdrop/netdrop/stage"
)

// tcx-ingress-drop: the tc program of tc-ingress-drop attached the way
// eBPF datapaths do on kernels 6.6 and later: tcx, a BPF link on the
// interface's ingress, with no clsact qdisc and no tc filter — so `tc
// filter show` lists nothing and no qdisc counts the drops. netdrop must
// still put them on the receive side and name the program. BPF run
// statistics are on (journalled) for the reference's run count.
func init() {
	const port = 5027
	register(Scenario{
		Name:       "tcx-ingress-drop",
		Stage:      stage.TCIngress,
		Story:      "an eBPF program attached with tcx (a BPF link, no qdisc or filter) on the receiver's ingress drops UDP to port 5027",
		DiagnoseOn: Receiver,
		Inject: func(ctx context.Context, e *Env) (Traffic, error) {
			return e.hookDropTraffic(port, "tc_drop_udp", func(p *ebpf.Program) error {
				if err := e.SetGlobal("kernel.bpf_stats_enabled", "1"); err != nil {
					return err
				}
				return e.attachTCX(e.Receiver, p)
			})
		},
	})
}

// attachTCX attaches prog to n's link at tcx ingress. The link is closed
// at teardown, which detaches the program (it is not pinned).
func (e *Env) attachTCX(n *Node, prog *ebpf.Program) error {
	idx, err := n.LinkIndex()
	if err != nil {
		return err
	}
	var l link.Link
	err = n.Do(func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		return fmt.Errorf("tcx ingress on %s in %s: %w", n.Link, n.NS, err)
	}
	e.Defer(func() error {
		if err := l.Close(); err != nil {
			return fmt.Errorf("detach tcx in %s: %w", n.NS, err)
		}
		return nil
	})
	return nil
}
