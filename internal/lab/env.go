package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	ndnetns "github.com/netdrop/netdrop/internal/netns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The lab network: one /24 from 10.200.0.0/8-style private space that is only
// ever configured inside the lab's own namespaces.
var (
	senderAddr   = netip.MustParseAddr("10.231.0.1")
	receiverAddr = netip.MustParseAddr("10.231.0.2")
)

const prefixLen = 24

// Interface names inside the namespaces. They carry the lab prefix so that
// one found anywhere is recognisably the lab's.
const (
	senderLink   = Prefix + "snd"
	receiverLink = Prefix + "rcv"
)

// Node is one namespace of a lab network.
type Node struct {
	// NS is the namespace's name under /run/netns, usable with
	// `ip netns exec` and `netdrop diagnose --netns`.
	NS string
	// Link is the name of the node's veth end.
	Link string
	// Addr is the node's IPv4 address on the veth.
	Addr netip.Addr

	handle netns.NsHandle
}

// Do runs fn on a locked thread inside the node's namespace. Sockets opened
// in fn stay in the namespace after it returns.
func (n *Node) Do(fn func() error) error { return ndnetns.Do(n.NS, fn) }

// nsTarget is the lab namespace named ns, or the host's for "".
func nsTarget(ns string) ndnetns.Target {
	if ns == "" {
		return ndnetns.Current()
	}
	return ndnetns.Named(ns)
}

// Sysctl sets a per-namespace sysctl inside the node. The namespace dies
// with the lab, so nothing has to be restored.
func (n *Node) Sysctl(name, value string) error {
	return n.Do(func() error { return writeSysctl(name, value) })
}

// ReadSysctl reads a sysctl inside the node.
func (n *Node) ReadSysctl(name string) (string, error) {
	var v string
	err := n.Do(func() error {
		var err error
		v, err = readSysctl(name)
		return err
	})
	return v, err
}

// Netlink returns an rtnetlink handle bound to the node's namespace. The
// caller closes it. Only NETLINK_ROUTE is asked for: the library's default
// also opens xfrm and netfilter sockets, which fail with "protocol not
// supported" on kernels where xfrm_user is neither loaded nor loadable.
func (n *Node) Netlink() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(n.handle, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", n.NS, err)
	}
	return h, nil
}

// LinkIndex returns the ifindex of the node's veth end.
func (n *Node) LinkIndex() (int, error) {
	h, err := n.Netlink()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(n.Link)
	if err != nil {
		return 0, fmt.Errorf("%s in %s: %w", n.Link, n.NS, err)
	}
	return l.Attrs().Index, nil
}

// Fd is the namespace's file descriptor (for google/nftables).
func (n *Node) Fd() int { return int(n.handle) }

// Env is a built lab network: a sender and a receiver namespace joined by a
// veth pair, plus everything the scenario registered for teardown.
type Env struct {
	Scenario string
	Sender   *Node
	Receiver *Node

	mu      sync.Mutex
	undo    []func() error // teardown only, in reverse order
	closers []func() error // teardown and --keep: sockets and the like
	journal *journal
	globals []savedSysctl // global settings changed, in order
	// apps are the sockets of the lab's applications (Env.socket), which
	// --fix changes when a finding's fix belongs in the application.
	apps []appSocket
}

// Node returns the node on side s, nil for Host.
func (e *Env) Node(s Side) *Node {
	switch s {
	case Sender:
		return e.Sender
	case Host:
		return nil
	}
	return e.Receiver
}

// diagnoseNS is the namespace spec the diagnosis of side s reads: a lab
// namespace's name, or "" for the lab's own namespace.
func (e *Env) diagnoseNS(s Side) string {
	if n := e.Node(s); n != nil {
		return n.NS
	}
	return ""
}

// Defer registers fn to undo part of the fault at teardown, before the
// namespaces are deleted (last registered runs first). With --keep it does
// not run: the fault stays in place for exploration.
func (e *Env) Defer(fn func() error) {
	e.mu.Lock()
	e.undo = append(e.undo, fn)
	e.mu.Unlock()
}

// CloseFd registers a socket to be closed when the scenario ends, kept or
// not: an open socket would keep its namespace alive after the name is
// removed.
func (e *Env) CloseFd(fd int) {
	e.mu.Lock()
	e.closers = append(e.closers, func() error { return unix.Close(fd) })
	e.mu.Unlock()
}

// runList runs and forgets one of the lists of undo functions, last first.
func (e *Env) runList(list *[]func() error) []error {
	e.mu.Lock()
	fns := *list
	*list = nil
	e.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		if err := fns[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// SetGlobal changes a host-wide sysctl (one that exists only in the initial
// namespace, such as net.core.netdev_max_backlog). The old value is
// journalled on disk first, so it is restored at teardown, and by the next
// run if this one is killed.
func (e *Env) SetGlobal(name, value string) error {
	if err := e.journalGlobal(name, value); err != nil {
		return err
	}
	return writeSysctlAt(e.journal.root, name, value)
}

// journalGlobal records that a host-wide setting is about to be set to
// value by something other than SetGlobal (the --fix flow applies tune's
// plan), so that teardown, or the next run after a kill, restores the value
// from before the lab even if the rollback file of that plan is never used.
func (e *Env) journalGlobal(name, value string) error {
	old, err := readSysctlAt(e.journal.root, name)
	if err != nil {
		return err
	}
	if err := e.journal.save(name, old, value); err != nil {
		return err
	}
	e.mu.Lock()
	e.globals = append(e.globals, savedSysctl{Name: name, Value: old})
	e.mu.Unlock()
	return nil
}

// RestoreGlobals puts every global setting back now. The runner calls it
// right after the second snapshot, to keep host-wide changes as short as
// possible; teardown calls it again in case the run ended earlier.
func (e *Env) RestoreGlobals() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.globals) == 0 {
		return nil
	}
	e.globals = nil
	_, kept, err := e.journal.restore()
	for _, k := range kept {
		err = errors.Join(err, errors.New(k.String()))
	}
	return err
}

// nsName is the namespace name of one side of a scenario.
func nsName(scenario string, s Side) string {
	if s == Sender {
		return Prefix + scenario + "-snd"
	}
	return Prefix + scenario + "-rcv"
}

// build creates the lab network for a scenario. On error, whatever was made
// is removed before it returns.
func build(scenario string) (e *Env, err error) {
	e = &Env{Scenario: scenario, journal: newJournal()}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.teardown())
			e = nil
		}
	}()
	e.Sender = &Node{NS: nsName(scenario, Sender), Link: senderLink, Addr: senderAddr, handle: -1}
	e.Receiver = &Node{NS: nsName(scenario, Receiver), Link: receiverLink, Addr: receiverAddr, handle: -1}
	for _, n := range []*Node{e.Sender, e.Receiver} {
		if n.handle, err = createNamedNS(n.NS); err != nil {
			return e, err
		}
		// IPv6 is off so that router solicitations and DAD do not add
		// packets the scenario did not send.
		for _, s := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
			if err := n.Sysctl(s, "1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return e, err
			}
		}
	}
	// Both ends are created directly inside their namespaces: no lab
	// interface ever exists in the namespace the lab runs from.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: senderLink, Namespace: netlink.NsFd(e.Sender.handle)},
		PeerName:      receiverLink,
		PeerNamespace: netlink.NsFd(e.Receiver.handle),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return e, fmt.Errorf("create veth pair %s/%s: %w", senderLink, receiverLink, err)
	}
	macs := map[*Node]net.HardwareAddr{}
	for _, n := range []*Node{e.Sender, e.Receiver} {
		mac, err := configure(n)
		if err != nil {
			return e, err
		}
		macs[n] = mac
	}
	// Permanent neighbour entries both ways: a flood that starts before ARP
	// has resolved would lose packets in the neighbour queue, a stage no
	// scenario means to break.
	for _, p := range [][2]*Node{{e.Sender, e.Receiver}, {e.Receiver, e.Sender}} {
		if err := addNeighbor(p[0], p[1].Addr, macs[p[1]]); err != nil {
			return e, err
		}
	}
	return e, nil
}

// configure brings up lo and the veth end of n and gives it its address.
func configure(n *Node) (net.HardwareAddr, error) {
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("lo in %s: %w", n.NS, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("set lo up in %s: %w", n.NS, err)
	}
	l, err := h.LinkByName(n.Link)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", n.Link, n.NS, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.Addr.AsSlice(), Mask: net.CIDRMask(prefixLen, 32)}}
	if err := h.AddrAdd(l, addr); err != nil {
		return nil, fmt.Errorf("address %s on %s in %s: %w", n.Addr, n.Link, n.NS, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("set %s up in %s: %w", n.Link, n.NS, err)
	}
	return l.Attrs().HardwareAddr, nil
}

func addNeighbor(n *Node, ip netip.Addr, mac net.HardwareAddr) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	idx, err := n.LinkIndex()
	if err != nil {
		return err
	}
	err = h.NeighSet(&netlink.Neigh{
		LinkIndex:    idx,
		Family:       unix.AF_INET,
		State:        netlink.NUD_PERMANENT,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	})
	if err != nil {
		return fmt.Errorf("neighbour %s in %s: %w", ip, n.NS, err)
	}
	return nil
}

// teardown undoes everything: the scenario's registered undo functions,
// global settings, the veth pair, and the namespaces. It keeps going past
// errors and returns them all.
func (e *Env) teardown() error {
	errs := e.runList(&e.closers)
	errs = append(errs, e.runList(&e.undo)...)
	if err := e.RestoreGlobals(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, e.deleteNodes()...)
	return errors.Join(errs...)
}

// release drops the namespace handles but leaves the network up (--keep).
func (e *Env) release() error {
	errs := e.runList(&e.closers)
	if err := e.RestoreGlobals(); err != nil {
		errs = append(errs, err)
	}
	for _, n := range []*Node{e.Sender, e.Receiver} {
		if n != nil && n.handle >= 0 {
			n.handle.Close()
			n.handle = -1
		}
	}
	return errors.Join(errs...)
}

func (e *Env) deleteNodes() []error {
	var errs []error
	// Deleting the veth explicitly makes its removal synchronous; a
	// namespace's own devices are otherwise removed by the kernel's
	// asynchronous namespace cleanup.
	if n := e.Sender; n != nil && n.handle >= 0 {
		if h, err := n.Netlink(); err == nil {
			if l, err := h.LinkByName(n.Link); err == nil {
				if err := h.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("delete %s in %s: %w", n.Link, n.NS, err))
				}
			}
			h.Close()
		}
	}
	for _, n := range []*Node{e.Sender, e.Receiver} {
		if n == nil {
			continue
		}
		if n.handle >= 0 {
			n.handle.Close()
			n.handle = -1
		}
		if err := deleteNamedNS(n.NS); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// createNamedNS creates a network namespace and pins it at /run/netns/name
// the way `ip netns add` does: a bind mount of the namespace file.
func createNamedNS(name string) (netns.NsHandle, error) {
	if err := os.MkdirAll(ndnetns.RunDir, 0o755); err != nil {
		return -1, fmt.Errorf("create %s: %w", ndnetns.RunDir, err)
	}
	path := filepath.Join(ndnetns.RunDir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return -1, fmt.Errorf("create namespace %s: %w", name, err)
	}
	f.Close()
	// unshare changes the namespace of the calling thread, so it runs on a
	// thread that is retired afterwards.
	err = onThrowawayThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("create namespace %s: unshare: %w", name, err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("create namespace %s: bind mount: %w", name, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return -1, err
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		deleteNamedNS(name)
		return -1, fmt.Errorf("open namespace %s: %w", name, err)
	}
	return h, nil
}

// deleteNamedNS unpins a namespace as `ip netns delete` does. The kernel
// frees it once nothing else holds it.
func deleteNamedNS(name string) error {
	path := filepath.Join(ndnetns.RunDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete namespace %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}
