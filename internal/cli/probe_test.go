package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netdrop/netdrop/probe"
)

func TestProbeLocalJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, proto := range []string{"udp", "tcp"} {
		var out, errb bytes.Buffer
		code := Main(ctx, []string{"probe", "local", "--proto", proto, "--rate", "20000", "--duration", "300ms", "--rcvbuf", "4194304", "--json"}, &out, &errb)
		var rep probe.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%s: exit %d, not one JSON object: %v\n%s\n%s", proto, code, err, out.String(), errb.String())
		}
		if rep.Proto != proto || rep.Sent == 0 || rep.Received+rep.Lost != rep.Sent || rep.Send == nil || rep.Latency == nil {
			t.Errorf("%s: report %+v", proto, rep)
		}
		want := ExitOK
		if rep.Lost > 0 || rep.Corrupted > 0 {
			want = ExitFindings
		}
		if code != want {
			t.Errorf("%s: exit %d, want %d (lost %d)", proto, code, want, rep.Lost)
		}
	}
}

func TestProbeLocalText(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	Main(ctx, []string{"probe", "local", "--rate", "20000", "--duration", "1200ms", "--rcvbuf", "4194304"}, &out, &errb)
	s := out.String()
	for _, want := range []string{"s  recv ", "sent ", "received ", "lost ", "latency     p50", "where lost", "not on either host", "watched   receiver: "} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, s, errb.String())
		}
	}
}

func TestProbeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"probe", "local", "--proto", "sctp"},
		{"probe", "client"},
		{"probe", "local", "--rate", "fast"},
		{"probe", "local", "--size", "10"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != ExitError {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitError, errb.String())
		}
	}
}

// TestProbeLocalNetns runs both ends inside a namespace made for the test,
// with a small buffer and a slow reader: the socket-rcvbuf evidence must be
// that namespace's Udp:RcvbufErrors, equal to what nstat reads there.
func TestProbeLocalNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("ndtest-cliprobe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, []string{"probe", "local", "--netns", name, "--rate", "50000", "--duration", "500ms",
		"--rcvbuf", "4096", "--reader-delay", "300us", "--json"}, &out, &errb)
	var rep probe.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, not JSON: %v\n%s\n%s", code, err, out.String(), errb.String())
	}
	if code != ExitFindings || rep.Lost == 0 {
		t.Fatalf("exit %d, lost %d: the slow reader lost nothing", code, rep.Lost)
	}
	nstat, err := exec.Command("ip", "netns", "exec", name, "nstat", "-asz", "UdpRcvbufErrors").Output()
	if err != nil {
		t.Fatalf("nstat: %v", err)
	}
	var want uint64
	for _, line := range strings.Split(string(nstat), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "UdpRcvbufErrors" {
			want, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	var got uint64
	var found bool
	for _, s := range rep.Attribution.Stages {
		for _, e := range s.Evidence {
			if e.Field == "Udp:RcvbufErrors" {
				got, found = e.Delta, true
			}
		}
	}
	if !found || got != want || got != rep.SocketDrops {
		t.Errorf("Udp:RcvbufErrors evidence %d (found %v), nstat in the namespace %d, socket drops %d", got, found, want, rep.SocketDrops)
	}
}

// lockedBuffer is a bytes.Buffer the server's goroutines may write while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProbeServerStray: garbage to an idle `probe server` (issue 13, attack
// 5) is counted and shown: on stderr as a line (or a JSON object with
// --json), and in the report of the next run.
func TestProbeServerStray(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprint("json=", asJSON), func(t *testing.T) {
			l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			addr := l.LocalAddr().String()
			l.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := []string{"probe", "server", "--listen", addr, "--once"}
			if asJSON {
				args = append(args, "--json")
			}
			var out, errb lockedBuffer
			done := make(chan int, 1)
			go func() { done <- Main(ctx, args, &out, &errb) }()

			c, err := net.Dial("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Until the server is bound, a datagram comes back refused; the
			// first that is not refused is the first garbage it counts.
			buf := make([]byte, 64)
			for {
				if _, err := c.Write([]byte("hello?")); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Read(buf); errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("the server never listened: %s", errb.String())
				}
			}
			const n = 200
			for range n - 1 {
				if _, err := c.Write([]byte("not a probe frame")); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Microsecond)
			}
			rc, err := probe.DialUDP(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if _, err := probe.RunUDP(ctx, rc, probe.ClientConfig{Rate: 10000, Count: 100}); err != nil {
				t.Fatal(err)
			}
			if code := <-done; code != ExitOK {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if !asJSON {
				line := fmt.Sprintf("probe server: outside any run so far: %d datagrams", n)
				if !strings.Contains(errb.String(), line) || !strings.Contains(errb.String(), "latest from "+c.LocalAddr().String()) {
					t.Errorf("stderr lacks %q from %s:\n%s", line, c.LocalAddr(), errb.String())
				}
				if !strings.Contains(out.String(), fmt.Sprintf("server      outside any run so far: %d datagrams", n)) {
					t.Errorf("report lacks the stray line:\n%s", out.String())
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			var last struct{ Stray *probe.Stray }
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Stray == nil || last.Stray.Datagrams != n {
				t.Errorf("last stderr line %q: %v; want {\"stray\": …} with %d datagrams", lines[len(lines)-1], err, n)
			}
			var rep probe.Report
			if err := json.Unmarshal([]byte(out.String()), &rep); err != nil || rep.Stray == nil || rep.Stray.Datagrams != n || rep.Stray.LastFrom != "" {
				t.Errorf("report %v: stray %+v; want %d datagrams, no peer address", err, rep.Stray, n)
			}
		})
	}
}
