package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/sockets"
	"golang.org/x/sys/unix"
)

func TestRenderSockets(t *testing.T) {
	sum := &sockets.Summary{
		Netns:    "web",
		Settings: sockets.Settings{PortLow: 32768, PortHigh: 60999, TwReuse: 2, Timestamps: 1},
		Total:    26000,
		Counts: []sockets.StateCount{
			{Family: "ipv4", Protocol: "tcp", State: sockets.TimeWait, Count: 25500},
			{Family: "ipv4", Protocol: "tcp", State: sockets.Established, Count: 400},
			{Family: "ipv6", Protocol: "tcp", State: sockets.Listen, Count: 1},
			{Family: "ipv4", Protocol: "udp", State: sockets.Close, Count: 99},
		},
		TimeWait:       sockets.TimeWaitSides{Total: 25500, Server: 500, Client: 25000},
		ServerTimeWait: []sockets.PortCount{{Port: 443, Count: 500}},
		Destinations: []sockets.Destination{{
			Remote: netip.MustParseAddrPort("10.200.0.9:5432"), Sockets: 25400, TimeWait: 25000, Established: 400,
			Sources: 1, EphemeralInUse: 25400, Share: 25400.0 / 28232, Severity: "critical", TwReuse: sockets.TwReuseWouldHelp,
		}},
		DestinationsTotal: 3,
		Listeners: []sockets.Listener{{Family: "ipv6", Local: netip.MustParseAddrPort("[::]:443"), Queued: 129, Backlog: 128,
			Fill: 129.0 / 128, Full: true, Drops: 12, Processes: []sockets.Process{{PID: 42, Comm: "nginx"}}}},
		ListenersTotal: 1,
		Pressure: []sockets.PressuredSocket{{Family: "ipv4", Protocol: "udp", State: sockets.Close,
			Local: netip.MustParseAddrPort("0.0.0.0:53"), Remote: netip.MustParseAddrPort("0.0.0.0:0"),
			Drops: 39, RmemAlloc: 2304, Rcvbuf: 2304, Fill: 1, Processes: []sockets.Process{{PID: 7, Comm: "dnsd"}}}},
		PressureTotal: 1,
		Unavailable:   []string{"process lookup: 1 of 90 processes could not be read (exited, or not root)"},
	}
	var b bytes.Buffer
	if err := renderSockets(&b, sum); err != nil {
		t.Fatal(err)
	}
	want := `netns web: 26000 sockets; ephemeral ports 32768-60999 (28232); tcp_tw_reuse=2 (loopback only); tcp_timestamps=1

STATE      TCP/IPv4  TCP/IPv6  UDP/IPv4  UDP/IPv6
ESTAB      400       0         0         0
TIME-WAIT  25500     0         0         0
UNCONN     0         0         99        0
LISTEN     0         1         0         0
TIME-WAIT 25500: 500 as server (local listening port: this host closed first), 25000 as client
  server TIME-WAIT by listening port: :443 500

DESTINATIONS (TCP client sockets; ephemeral ports used by the busiest source, of 28232)
REMOTE           SOCKETS  TIME-WAIT  ESTAB  SOURCES  PORTS  SHARE  TW_REUSE
10.200.0.9:5432  25400    25000      400    1        25400  90.0%  would help (set 1)  CRITICAL
(1 of 3 destinations; --top 0 shows all)

LISTENERS (accept queue: queued / backlog; drops since the listener opened)
LOCAL     QUEUED  BACKLOG  FILL    DROPS  PROCESS
[::]:443  129     128      100.8%  12     nginx(42)  FULL

DROPS / FULL RECEIVE QUEUES (drops since the socket opened; receive memory / SO_RCVBUF)
PROTO  LOCAL       REMOTE  STATE   DROPS  RECV MEM   FILL    PROCESS
udp4   0.0.0.0:53  *       UNCONN  39     2304/2304  100.0%  dnsd(7)
unavailable: process lookup: 1 of 90 processes could not be read (exited, or not root)
`
	got := trimRight(b.String())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !socketsAlarm(sum) {
		t.Error("a critical destination and a full listener should exit 1")
	}
}

// trimRight drops the padding tabwriter leaves at line ends.
func trimRight(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// TestSocketsCommand runs `netdrop sockets --netns NS --json` on a namespace
// with a listener whose accept queue is full, and checks what ss says.
func TestSocketsCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
	ns := fmt.Sprintf("ndtest-cli-sockets-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v\n%s", err, out)
	}
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	err := netns.Do(ns, func() error {
		l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		fds = append(fds, l)
		if err := unix.Bind(l, &unix.SockaddrInet4{Port: 7070, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		if err := unix.Listen(l, 1); err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, c)
			if err := unix.Connect(c, &unix.SockaddrInet4{Port: 7070, Addr: [4]byte{127, 0, 0, 1}}); err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := exec.Command("ip", "netns", "exec", ns, "ss", "-Hlnt", "sport", "=", ":7070").Output()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"sockets", "--netns", ns, "--json", "--port", "7070"}, &stdout, &stderr)
	if code != ExitFindings {
		t.Errorf("exit code %d, want %d for a full accept queue; stderr: %s", code, ExitFindings, stderr.String())
	}
	var sum sockets.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout.String())
	}
	f := strings.Fields(string(ss))
	if len(f) < 4 || len(sum.Listeners) != 1 {
		t.Fatalf("ss %q, netdrop listeners %+v", ss, sum.Listeners)
	}
	l := sum.Listeners[0]
	if got, want := fmt.Sprintf("%d %d %s", l.Queued, l.Backlog, l.Local), strings.Join(f[1:4], " "); got != want {
		t.Errorf("netdrop listener %q, ss %q", got, want)
	}
	if len(l.Processes) == 0 || l.Processes[0].PID != os.Getpid() {
		t.Errorf("listener owner %v, want this test's pid %d", l.Processes, os.Getpid())
	}
	if code := Main(context.Background(), []string{"sockets", "--state", "nonsense"}, &stdout, &stderr); code != ExitError {
		t.Errorf("bad --state: exit %d, want %d", code, ExitError)
	}
}
