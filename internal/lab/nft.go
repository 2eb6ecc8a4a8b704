package lab

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftTable is the name of the lab's nftables table in its namespaces.
const nftTable = "ndlab"

// addInputRules creates table inet ndlab with a filter chain on the input
// hook (policy accept) holding the given rules, inside n's namespace, and
// registers the table's removal at teardown. The namespace would take the
// rules with it; removing them explicitly keeps teardown honest when
// namespaces are kept or shared.
func (e *Env) addInputRules(n *Node, rules ...[]expr.Any) error {
	return e.addRules(n, "input", nftables.ChainHookInput, rules...)
}

// addOutputRules is addInputRules for the output hook: packets the
// namespace's own stack sends.
func (e *Env) addOutputRules(n *Node, rules ...[]expr.Any) error {
	return e.addRules(n, "output", nftables.ChainHookOutput, rules...)
}

// addRules creates table inet ndlab with a filter chain named name on hook
// (policy accept) holding rules, inside n's namespace, and registers the
// table's removal at teardown.
func (e *Env) addRules(n *Node, name string, hook *nftables.ChainHook, rules ...[]expr.Any) error {
	c, err := nftables.New(nftables.WithNetNSFd(n.Fd()))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", n.NS, err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: nftTable})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     name,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  hook,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	})
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add nftables rules in %s: %w", n.NS, err)
	}
	e.Defer(func() error {
		c, err := nftables.New(nftables.WithNetNSFd(n.Fd()))
		if err != nil {
			return err
		}
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("delete nftables table %s in %s: %w", nftTable, n.NS, err)
		}
		return nil
	})
	return nil
}

// matchUDPDport is `meta l4proto udp udp dport PORT`.
func matchUDPDport(port uint16) []expr.Any { return matchDport(unix.IPPROTO_UDP, port) }

// matchDport is `meta l4proto PROTO th dport PORT`: TCP and UDP both carry
// the destination port at offset 2 of their header.
func matchDport(proto uint8, port uint16) []expr.Any {
	p := make([]byte, 2)
	binary.BigEndian.PutUint16(p, port)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p},
	}
}

// ctStateNew is `ct state new`. Any ct expression makes the kernel track
// connections in that namespace; without one conntrack stays off there.
func ctStateNew() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitNEW)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// then appends a counter and a verdict to a match: counters are what
// `nft list ruleset` and netdrop read back.
func then(match []expr.Any, verdict expr.VerdictKind) []expr.Any {
	return append(match, &expr.Counter{}, &expr.Verdict{Kind: verdict})
}
