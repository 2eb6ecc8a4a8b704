package sockets

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
	"golang.org/x/sys/unix"
)

// Helpers for the kernel tests: namespaces this package creates and
// deletes, sockets made inside them, and ss run in them as the reference.

var nsSeq atomic.Int32

// needRoot skips a kernel test when not root: namespaces need CAP_SYS_ADMIN.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2) as the reference: %v", tool, err)
		}
	}
}

// newNetns creates a namespace with lo up and fd00::1/128 on it, deleted at
// cleanup, and returns its name.
func newNetns(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("ndtest-sockets-%d-%d", os.Getpid(), nsSeq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	run(t, "ip", "-n", name, "addr", "add", "fd00::1/128", "dev", "lo", "nodad")
	// The kernel adds the local route of an IPv6 address from a work
	// queue, even without DAD: wait for it before anyone connects.
	for deadline := time.Now().Add(3 * time.Second); ; {
		out, _ := exec.Command("ip", "-n", name, "-6", "route", "show", "table", "local").Output()
		if strings.Contains(string(out), "fd00::1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("netns %s: no local route for fd00::1 after 3s:\n%s", name, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return name
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ssIn runs ss inside the namespace and returns its output. ss -N enters
// the namespace itself: one process per reading instead of two, which is
// seconds per test in an emulated guest.
func ssIn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return run(t, "ss", append([]string{"-N", ns}, args...)...)
}

// in runs fn on a thread inside the namespace: sockets it creates belong there.
func in(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(ns, fn); err != nil {
		t.Fatalf("in netns %s: %v", ns, err)
	}
}

// sockaddr builds a socket address for "127.0.0.1" or "fd00::1".
func sockaddr(ip string, port int) (int, unix.Sockaddr) {
	a := net.ParseIP(ip)
	if a4 := a.To4(); a4 != nil {
		return unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: [4]byte(a4)}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: [16]byte(a.To16())}
}

// closeFD closes a raw socket at cleanup.
func closeFD(t testing.TB, fd int) { t.Cleanup(func() { unix.Close(fd) }) }

// rawListen opens a TCP listener with an explicit backlog that nobody
// accepts from (the Go runtime would accept and pass somaxconn).
func rawListen(t testing.TB, ip string, port, backlog int) int {
	t.Helper()
	fam, sa := sockaddr(ip, port)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, fd)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind %s:%d: %v", ip, port, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatal(err)
	}
	return fd
}

// rawConnect starts a non-blocking connect and leaves the socket open: it
// completes into the accept queue, or stays in SYN_SENT if the queue is full.
func rawConnect(t testing.TB, ip string, port int) int {
	t.Helper()
	fam, sa := sockaddr(ip, port)
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, fd)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		t.Fatalf("connect %s:%d: %v", ip, port, err)
	}
	return fd
}

// udpSink opens a UDP socket with a tiny receive buffer that is never read.
func udpSink(t testing.TB, ip string, port int) int {
	t.Helper()
	fam, sa := sockaddr(ip, port)
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD(t, fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind udp %s:%d: %v", ip, port, err)
	}
	return fd
}

// udpSend sends n datagrams of size bytes to ip:port from a fresh socket.
func udpSend(t testing.TB, ip string, port, n, size int) {
	t.Helper()
	fam, sa := sockaddr(ip, port)
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, size)
	for i := 0; i < n; i++ {
		if err := unix.Sendto(fd, buf, 0, sa); err != nil {
			t.Fatalf("sendto: %v", err)
		}
	}
}

// tcpServer listens on addr and hands every accepted connection to the
// test, which decides who closes first.
type tcpServer struct {
	ln          net.Listener
	wg          sync.WaitGroup
	established chan net.Conn
}

// next returns the next accepted connection.
func (s *tcpServer) next(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-s.established:
		return c
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no connection accepted within 30 s", s.ln.Addr())
		return nil
	}
}

func startServer(t testing.TB, ns, network, addr string) *tcpServer {
	t.Helper()
	s := &tcpServer{established: make(chan net.Conn, 1024)}
	in(t, ns, func() error {
		var err error
		s.ln, err = net.Listen(network, addr)
		return err
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.established <- c
		}
	}()
	t.Cleanup(func() {
		s.ln.Close()
		s.wg.Wait()
		for {
			select {
			case c := <-s.established:
				c.Close()
			default:
				return
			}
		}
	})
	return s
}

// dial opens a TCP connection from inside the namespace.
func dial(t testing.TB, ns, network, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	in(t, ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 2*time.Second)
		return err
	})
	return c
}

// clientCloses makes n connections that the client closes first: TIME_WAIT
// lands on the client's ephemeral port once the server's FIN arrives.
func clientCloses(t testing.TB, ns, network, addr string, s *tcpServer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		c := dial(t, ns, network, addr)
		c.Close()
		sc := s.next(t)
		readEOF(t, sc, "the client's FIN")
		sc.Close()
	}
}

// serverCloses makes n connections that the server closes first: TIME_WAIT
// lands on the server's listening port once the client's FIN arrives. The
// test closes the accepted side itself, so the order never depends on how
// soon the accept loop runs (it can be seconds in a slow VM).
func serverCloses(t testing.TB, ns, network, addr string, s *tcpServer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		c := dial(t, ns, network, addr)
		s.next(t).Close()
		readEOF(t, c, "the server's FIN")
		c.Close()
	}
}

// readEOF reads c until the peer's FIN; a timeout fails the test rather
// than leaving the connection in a state nobody arranged.
func readEOF(t testing.TB, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("%s -> %s: waiting for %s: %v", c.LocalAddr(), c.RemoteAddr(), what, err)
	}
}

// waitTCPStates polls ss in the namespace until want(state counts) holds,
// and fails with what ss shows if it does not within 30 s. Closing
// handshakes finish in the peer's softirq after close returns, so a count
// of TIME_WAIT right after the last close can still be short.
func waitTCPStates(t testing.TB, ns, what string, want func(map[string]int) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		out := ssIn(t, ns, "-Htan")
		counts := map[string]int{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				counts[f[0]]++
			}
		}
		if want(counts) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("netns %s: not %s after 30 s; ss -tan shows %v:\n%s", ns, what, counts, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
