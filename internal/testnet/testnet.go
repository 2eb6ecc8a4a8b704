// Package testnet builds throwaway network namespaces for kernel tests: two
// hosts joined by a veth pair, with helpers to run reference tools (ip, nft,
// tc, nstat) inside them and to open sockets there. Everything it makes is
// removed in t.Cleanup, also when the test fails.
//
// Tests may shell out to iproute2 and friends (they are the reference the
// product is compared with); the product itself never does.
package testnet

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
	"golang.org/x/sys/unix"
)

// Pair is two namespaces, A and B, joined by veth: A's end is "a0" with
// AddrA, B's end is "b0" with AddrB.
type Pair struct {
	A, B         string // namespace names under /run/netns
	AddrA, AddrB net.IP
}

var seq atomic.Int32

// RequireRoot skips the test with a reason unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("kernel test: needs iproute2 (ip) as the reference tool")
	}
}

// NewPair creates the namespaces and the veth between them. prefix names
// the test package so leftovers are attributable.
func NewPair(t testing.TB, prefix string) *Pair {
	t.Helper()
	RequireRoot(t)
	n := seq.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	p := &Pair{
		A:     fmt.Sprintf("ndt-%s-a-%s", prefix, id),
		B:     fmt.Sprintf("ndt-%s-b-%s", prefix, id),
		AddrA: net.IPv4(10, 231, byte(n%250), 1).To4(),
		AddrB: net.IPv4(10, 231, byte(n%250), 2).To4(),
	}
	for _, ns := range []string{p.A, p.B} {
		MustRun(t, "ip", "netns", "add", ns)
		ns := ns
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	MustRun(t, "ip", "link", "add", "a0", "netns", p.A, "type", "veth", "peer", "name", "b0", "netns", p.B)
	MustRun(t, "ip", "-n", p.A, "addr", "add", p.AddrA.String()+"/24", "dev", "a0")
	MustRun(t, "ip", "-n", p.B, "addr", "add", p.AddrB.String()+"/24", "dev", "b0")
	for _, c := range [][]string{{p.A, "a0"}, {p.B, "b0"}, {p.A, "lo"}, {p.B, "lo"}} {
		MustRun(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	return p
}

// MustRun runs a command and fails the test with its output on error.
func MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// In runs a command inside namespace ns (ip netns exec).
func In(t testing.TB, ns, name string, args ...string) string {
	t.Helper()
	return MustRun(t, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// ListenUDP opens a UDP socket bound to addr inside ns. The socket stays in
// that namespace after the call returns.
func ListenUDP(t testing.TB, ns string, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := netns.Do(ns, func() error {
		ua, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", ua)
		return err
	})
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// SendUDP sends n datagrams of size bytes from namespace ns to dst and
// returns how many the kernel accepted.
func SendUDP(t testing.TB, ns string, dst string, n, size int) int {
	t.Helper()
	var sent int
	err := netns.Do(ns, func() error {
		c, err := net.Dial("udp4", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, size)
		for i := 0; i < n; i++ {
			if _, err := c.Write(buf); err == nil {
				sent++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send udp to %s from %s: %v", dst, ns, err)
	}
	return sent
}

// Nstat returns the absolute value of one nstat counter (e.g.
// "UdpRcvbufErrors") inside ns, without touching nstat's history file.
func Nstat(t testing.TB, ns, name string) uint64 {
	t.Helper()
	out := In(t, ns, "nstat", "-saz", name)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			var v uint64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	t.Fatalf("nstat: no %s in\n%s", name, out)
	return 0
}

// RequireTool skips the test when a reference tool is not installed.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s as the reference tool (apt-get install %s)", name, name)
	}
}

// ListenTCPBacklog opens a TCP listener on addr inside ns with the given
// listen() backlog, and never accepts: its accept queue fills and stays
// full. (net.Listen always asks for net.core.somaxconn.)
func ListenTCPBacklog(t testing.TB, ns, addr string, backlog int) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	err = netns.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
			return err
		}
		return unix.Listen(fd, backlog)
	})
	if err != nil {
		t.Fatalf("listen tcp %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}

// ConnectMany starts n non-blocking TCP connects from ns to addr at once,
// leaves them timeout to complete (or to have their SYNs dropped), then
// closes them all.
func ConnectMany(t testing.TB, ns, addr string, n int, timeout time.Duration) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	err = netns.Do(ns, func() error {
		for i := 0; i < n; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
			if err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("connect to %s from %s: %v", addr, ns, err)
	}
	time.Sleep(timeout)
}
