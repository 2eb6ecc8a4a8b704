package testnet

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
)

// Chain is three namespaces in a line, a sender, a router and a receiver,
// joined by two veth pairs: Sender's "s0" (SenderAddr) faces the router's
// "r0" (RouterIn), the router's "r1" (RouterOut) faces Receiver's "d0"
// (ReceiverAddr). The router forwards (net.ipv4.ip_forward=1 in its own
// namespace only) and each end routes everything through it, so a frame
// from sender to receiver crosses three network stacks.
type Chain struct {
	Sender, Router, Receiver string // namespace names under /run/netns
	SenderAddr, RouterIn     net.IP
	RouterOut, ReceiverAddr  net.IP
}

// NewChain creates the three namespaces, the veths and the routes; all are
// removed when the test ends, also when it fails.
func NewChain(t testing.TB, prefix string) *Chain {
	t.Helper()
	RequireRoot(t)
	n := seq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	c := &Chain{
		Sender:       fmt.Sprintf("ndt-%s-snd-%s", prefix, id),
		Router:       fmt.Sprintf("ndt-%s-rtr-%s", prefix, id),
		Receiver:     fmt.Sprintf("ndt-%s-rcv-%s", prefix, id),
		SenderAddr:   net.IPv4(10, 232, byte(n%250), 1).To4(),
		RouterIn:     net.IPv4(10, 232, byte(n%250), 2).To4(),
		RouterOut:    net.IPv4(10, 233, byte(n%250), 1).To4(),
		ReceiverAddr: net.IPv4(10, 233, byte(n%250), 2).To4(),
	}
	for _, ns := range []string{c.Sender, c.Router, c.Receiver} {
		MustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	MustRun(t, "ip", "link", "add", "s0", "netns", c.Sender, "type", "veth", "peer", "name", "r0", "netns", c.Router)
	MustRun(t, "ip", "link", "add", "r1", "netns", c.Router, "type", "veth", "peer", "name", "d0", "netns", c.Receiver)
	for _, a := range []struct {
		ns, dev string
		ip      net.IP
	}{{c.Sender, "s0", c.SenderAddr}, {c.Router, "r0", c.RouterIn}, {c.Router, "r1", c.RouterOut}, {c.Receiver, "d0", c.ReceiverAddr}} {
		MustRun(t, "ip", "-n", a.ns, "addr", "add", a.ip.String()+"/24", "dev", a.dev)
		MustRun(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
		MustRun(t, "ip", "-n", a.ns, "link", "set", "lo", "up")
	}
	MustRun(t, "ip", "-n", c.Sender, "route", "add", "default", "via", c.RouterIn.String())
	MustRun(t, "ip", "-n", c.Receiver, "route", "add", "default", "via", c.RouterOut.String())
	In(t, c.Router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return c
}
