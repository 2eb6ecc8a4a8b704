package sockets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// scenario is a known socket state built inside a fresh namespace: every
// state netdrop reports, IPv4 and IPv6, TCP and UDP.
type scenario struct {
	ns string
	// What the test arranged, to check the views against.
	clientTW4, clientTW6 int // client-side TIME_WAIT toward the v4/v6 server
	serverTW4            int // server-side TIME_WAIT on the v4 listening port
	udpSent              int // datagrams sent to each UDP sink
	backlog, connects    int // the never-accepting listener
	synRecv              int // half-open handshakes
}

const (
	scnV4Addr   = "127.0.0.1:8080"
	scnV6Addr   = "[fd00::1]:8443"
	scnQueuePrt = 9090
	scnUDP4Port = 5353
	scnUDP6Port = 5354
	// scnSynRecvPort's listener never sees the final ACK of a handshake.
	scnSynRecvPort = 9191
)

// buildScenario needs root; it fills a new namespace and waits until the
// state is stable enough to compare with ss.
func buildScenario(t testing.TB) *scenario {
	t.Helper()
	needRoot(t)
	sc := &scenario{ns: newNetns(t), clientTW4: 5, clientTW6: 3, serverTW4: 4, udpSent: 40, backlog: 2, connects: 5}
	ns := sc.ns

	s4 := startServer(t, ns, "tcp4", scnV4Addr)
	s6 := startServer(t, ns, "tcp6", scnV6Addr)
	clientCloses(t, ns, "tcp4", scnV4Addr, s4, sc.clientTW4)
	clientCloses(t, ns, "tcp6", scnV6Addr, s6, sc.clientTW6)
	serverCloses(t, ns, "tcp4", scnV4Addr, s4, sc.serverTW4)
	// Two connections stay established each way.
	for i := 0; i < 2; i++ {
		c4 := dial(t, ns, "tcp4", scnV4Addr)
		t.Cleanup(func() { c4.Close() })
		c6 := dial(t, ns, "tcp6", scnV6Addr)
		t.Cleanup(func() { c6.Close() })
	}

	// A listener with backlog 2 that never accepts, and 5 clients: 3 fit
	// (the kernel admits backlog+1), the others stay in SYN_SENT and their
	// SYNs are dropped by the listener.
	in(t, ns, func() error {
		rawListen(t, "127.0.0.1", scnQueuePrt, sc.backlog)
		for i := 0; i < sc.connects; i++ {
			rawConnect(t, "127.0.0.1", scnQueuePrt)
		}
		// UDP sinks with a tiny buffer, v4 and v6, and a connected
		// UDP socket.
		udpSink(t, "127.0.0.1", scnUDP4Port)
		udpSink(t, "fd00::1", scnUDP6Port)
		udpSend(t, "127.0.0.1", scnUDP4Port, sc.udpSent, 1000)
		udpSend(t, "fd00::1", scnUDP6Port, sc.udpSent, 1000)
		fam, sa := sockaddr("127.0.0.1", scnUDP4Port)
		fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		closeFD(t, fd)
		return unix.Connect(fd, sa)
	})
	// A handshake left half done: nft drops the client's final ACK to
	// port 9191, so the server holds a request socket (reported as
	// SYN-RECV) while the client thinks it is established.
	if _, err := exec.LookPath("nft"); err == nil {
		run(t, "ip", "netns", "exec", ns, "nft", "add table inet ndtest; "+
			"add chain inet ndtest in { type filter hook input priority 0; }; "+
			"add rule inet ndtest in tcp dport 9191 tcp flags & (syn | ack) == ack drop")
		in(t, ns, func() error {
			rawListen(t, "127.0.0.1", scnSynRecvPort, 16)
			rawConnect(t, "127.0.0.1", scnSynRecvPort)
			return nil
		})
		sc.synRecv = 1
	} else {
		t.Logf("nft not installed: the scenario has no SYN-RECV socket")
	}
	sc.settle(t)
	return sc
}

// settle waits until the namespace holds exactly the arranged transient
// states: every closing handshake done (the TIME_WAIT count complete, no
// FIN-WAIT, CLOSE-WAIT, LAST-ACK or CLOSING left), the clients of the full
// listener that did not fit in SYN-SENT and the half-open handshake in
// SYN-RECV. Under a slow emulated CPU the last of these can take seconds.
func (sc *scenario) settle(t testing.TB) {
	t.Helper()
	tw := sc.clientTW4 + sc.clientTW6 + sc.serverTW4
	synSent := sc.connects - (sc.backlog + 1)
	waitTCPStates(t, sc.ns, fmt.Sprintf("settled (%d TIME-WAIT, %d SYN-SENT, %d SYN-RECV, no closing states)", tw, synSent, sc.synRecv),
		func(n map[string]int) bool {
			return n["TIME-WAIT"] == tw && n["SYN-SENT"] == synSent && n["SYN-RECV"] == sc.synRecv &&
				n["FIN-WAIT-1"]+n["FIN-WAIT-2"]+n["CLOSE-WAIT"]+n["LAST-ACK"]+n["CLOSING"] == 0
		})
}

// dumpTargets are the four dumps netdrop makes.
var dumpTargets = []struct {
	name          string
	family, proto uint8
	ssArgs        []string
}{
	{"tcp4", unix.AF_INET, unix.IPPROTO_TCP, []string{"-Htanm", "-4"}},
	{"tcp6", unix.AF_INET6, unix.IPPROTO_TCP, []string{"-Htanm", "-6"}},
	{"udp4", unix.AF_INET, unix.IPPROTO_UDP, []string{"-Huanm", "-4"}},
	{"udp6", unix.AF_INET6, unix.IPPROTO_UDP, []string{"-Huanm", "-6"}},
}

// TestRecordReplies records the kernel's raw replies for the scenario, and
// what ss printed for the same state, into testdata. It runs only when
// NETDROP_SOCKETS_RECORD=1: the recordings are committed and the decode
// tests read them on any machine.
func TestRecordReplies(t *testing.T) {
	if os.Getenv("NETDROP_SOCKETS_RECORD") != "1" {
		t.Skip("set NETDROP_SOCKETS_RECORD=1 to re-record testdata from this kernel")
	}
	sc := buildScenario(t)
	for _, d := range dumpTargets {
		var raw []byte
		in(t, sc.ns, func() error {
			c, err := Dial()
			if err != nil {
				return err
			}
			defer c.Close()
			return c.dumpFamily(context.Background(), d.family, d.proto, AllStates, func(m netlink.Message) error {
				b, err := m.MarshalBinary()
				raw = append(raw, b...)
				return err
			})
		})
		ss := ssIn(t, sc.ns, d.ssArgs...)
		base := filepath.Join("testdata", "scenario-"+d.name)
		if err := os.WriteFile(base+".nl", raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".ss", []byte(ss), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDumpTCPOneWalk checks, on this kernel, that the one-walk dump of
// both families (TCPDIAG_GETSOCK) is answered, not refused into the
// per-family fallback, and yields exactly the sockets of the two
// per-family dumps: the scenario holds IPv4 and IPv6 sockets in every
// state Summarize reads.
func TestDumpTCPOneWalk(t *testing.T) {
	needRoot(t)
	sc := buildScenario(t)
	in(t, sc.ns, func() error {
		c, err := Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		var oneWalk, perFamily []string
		fams := map[uint8]int{}
		err = c.dumpRaw(context.Background(), tcpDiagGetSock, encodeRequestV1(AllStates, extSkmeminfo), "tcp", func(m netlink.Message) error {
			s, err := decodeMessage(m.Data)
			if err != nil {
				return err
			}
			s.Protocol = unix.IPPROTO_TCP
			fams[s.Family]++
			oneWalk = append(oneWalk, ssLine(s))
			return nil
		})
		if err != nil {
			t.Fatalf("TCPDIAG_GETSOCK refused by this kernel: %v", err)
		}
		if fams[unix.AF_INET] == 0 || fams[unix.AF_INET6] == 0 {
			t.Errorf("one walk gave sockets of families %v, want IPv4 and IPv6", fams)
		}
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			if err := c.Dump(context.Background(), fam, unix.IPPROTO_TCP, AllStates, func(s *Socket) error {
				perFamily = append(perFamily, ssLine(*s))
				return nil
			}); err != nil {
				return err
			}
		}
		var viaDumpTCP []string
		if err := c.DumpTCP(context.Background(), AllStates, func(s *Socket) error {
			viaDumpTCP = append(viaDumpTCP, ssLine(*s))
			return nil
		}); err != nil {
			return err
		}
		slices.Sort(oneWalk)
		slices.Sort(perFamily)
		slices.Sort(viaDumpTCP)
		if diff := cmp.Diff(perFamily, oneWalk); diff != "" {
			t.Errorf("one walk vs per-family dumps (-per family +one walk):\n%s", diff)
		}
		if diff := cmp.Diff(perFamily, viaDumpTCP); diff != "" {
			t.Errorf("DumpTCP vs per-family dumps (-per family +DumpTCP):\n%s", diff)
		}
		return nil
	})
}
