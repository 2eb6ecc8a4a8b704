package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/memlock"
)

// loadHookProg loads one program of testdata/bpf/hookdrop.c (committed as
// hookdrop_bpfe{l,b}.o, see gen.go) set to drop IPv4 UDP datagrams to port.
// The caller attaches it; Env closes it at the end of the scenario (an
// attached program lives on while its interface holds it, and goes with the
// namespace).
func (e *Env) loadHookProg(name string, port uint16) (*ebpf.Program, error) {
	if err := memlock.Raise(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	spec, err := loadHookdrop()
	if err != nil {
		return nil, fmt.Errorf("hookdrop object: %w", err)
	}
	v, ok := spec.Variables["drop_port"]
	if !ok {
		return nil, errors.New("hookdrop object has no drop_port")
	}
	if err := v.Set(port); err != nil {
		return nil, fmt.Errorf("set drop_port: %w", err)
	}
	ps, ok := spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("hookdrop object has no program %s", name)
	}
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
		Programs:  map[string]*ebpf.ProgramSpec{name: ps},
		Maps:      spec.Maps,
		Variables: spec.Variables,
		Types:     spec.Types,
	}, ebpf.CollectionOptions{})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	prog := coll.DetachProgram(name)
	coll.Close()
	e.mu.Lock()
	e.closers = append(e.closers, prog.Close)
	e.mu.Unlock()
	return prog, nil
}

// hookDropTraffic is the part every hook scenario shares: a receiving
// socket on port so only the hook can drop, the program of hookdrop.c named
// prog set to that port and handed to attach, and a flood of 2000 datagrams
// from the sender.
func (e *Env) hookDropTraffic(port uint16, prog string, attach func(*ebpf.Program) error) (Traffic, error) {
	dst := netip.AddrPortFrom(e.Receiver.Addr, port)
	if _, err := e.socket(e.Receiver, unix.SOCK_DGRAM, bindTo(dst)); err != nil {
		return nil, err
	}
	p, err := e.loadHookProg(prog, port)
	if err != nil {
		return nil, err
	}
	if err := attach(p); err != nil {
		return nil, err
	}
	src, err := e.socket(e.Sender, unix.SOCK_DGRAM)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		r, err := floodUDP(ctx, src, dst, flood{Size: 200, Count: 2000, Spread: 400 * time.Millisecond, Budget: 2 * time.Second})
		if err == nil && r.Sent == 0 {
			err = fmt.Errorf("no datagram was sent")
		}
		return err
	}, nil
}

// addTCIngressBPF attaches prog to n's link as a tc ingress filter of a
// clsact qdisc in direct-action mode, the way eBPF datapaths install their
// programs (`tc filter add dev X ingress bpf da obj F sec tc`).
func (e *Env) addTCIngressBPF(n *Node, prog *ebpf.Program, name string) error {
	idx, err := n.LinkIndex()
	if err != nil {
		return err
	}
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := h.QdiscAdd(q); err != nil {
		return fmt.Errorf("clsact qdisc on %s in %s: %w", n.Link, n.NS, err)
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: idx,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    1,
			Priority:  1,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := h.FilterAdd(f); err != nil {
		return fmt.Errorf("bpf ingress filter on %s in %s: %w", n.Link, n.NS, err)
	}
	e.deferQdiscDel(n, q, "clsact")
	return nil
}

// attachXDP attaches prog to n's link in the given mode
// (nl.XDP_FLAGS_SKB_MODE for generic, nl.XDP_FLAGS_DRV_MODE for native),
// over netlink from inside n's namespace (the ifindex is the namespace's).
func (e *Env) attachXDP(n *Node, prog *ebpf.Program, flags int) error {
	set := func(fd int) error {
		return n.Do(func() error {
			l, err := netlink.LinkByName(n.Link)
			if err != nil {
				return fmt.Errorf("%s in %s: %w", n.Link, n.NS, err)
			}
			return netlink.LinkSetXdpFdWithFlags(l, fd, flags)
		})
	}
	if err := set(prog.FD()); err != nil {
		return fmt.Errorf("attach xdp to %s in %s: %w", n.Link, n.NS, err)
	}
	e.Defer(func() error {
		if err := set(-1); err != nil {
			return fmt.Errorf("detach xdp in %s: %w", n.NS, err)
		}
		return nil
	})
	return nil
}
