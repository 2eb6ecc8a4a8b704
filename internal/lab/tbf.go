package lab

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// addTbf puts a tbf shaper as the root qdisc of n's link: rate in bytes per
// second, a bucket of burst bytes and a queue of limit bytes. It is removed
// again at teardown (before the namespace goes, so a failed teardown does
// not leave a shaper on a kept namespace).
func (e *Env) addTbf(n *Node, rate uint64, burst, limit uint32) error {
	idx, err := n.LinkIndex()
	if err != nil {
		return err
	}
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       rate,
		Limit:      limit,
		Buffer:     netlink.Xmittime(rate, burst),
	}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("tbf qdisc on %s in %s: %w", n.Link, n.NS, err)
	}
	e.deferQdiscDel(n, q, "tbf")
	return nil
}

// deferQdiscDel removes q from n's link at teardown, before the namespace
// goes, so a failed teardown does not leave a qdisc on a kept namespace.
func (e *Env) deferQdiscDel(n *Node, q netlink.Qdisc, kind string) {
	e.Defer(func() error {
		h, err := n.Netlink()
		if err != nil {
			return err
		}
		defer h.Close()
		if err := h.QdiscDel(q); err != nil {
			return fmt.Errorf("delete %s qdisc in %s: %w", kind, n.NS, err)
		}
		return nil
	})
}
