package main_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/internal/lab"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// needTool finds a program the test drives. Outside CI a missing tool
// skips the test with the reason; under CI=true it fails, so a CI machine
// that lost the package cannot turn the test into a silent skip.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (apt-get install %s; .ci/run installs it): %v", name, pkg, err)
	}
	t.Skipf("%s not found (apt-get install %s): %v", name, pkg, err)
	return ""
}

// tmux drives one private tmux server (its own socket, killed at the end)
// with a shell in a pane of a fixed size.
type tmux struct {
	t      *testing.T
	bin    string
	socket string
}

func newTmux(t *testing.T, cols, rows int) *tmux {
	t.Helper()
	tm := &tmux{t: t, bin: needTool(t, "tmux", "tmux"), socket: fmt.Sprintf("ndtop-%d", os.Getpid())}
	// A plain shell with a known prompt; TERM as a terminal over SSH would
	// give it.
	tm.run("new-session", "-d", "-s", "top", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows),
		"env", "TERM=xterm-256color", "PS1=$ ", "bash", "--norc", "--noprofile")
	t.Cleanup(func() { _ = exec.Command(tm.bin, "-L", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command(tm.bin, append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys types into the pane: tmux key names ("Enter", "Escape") or text.
func (tm *tmux) keys(keys ...string) { tm.run(append([]string{"send-keys", "-t", "top"}, keys...)...) }

// screen is what the pane shows now, as text.
func (tm *tmux) screen() string { return tm.run("capture-pane", "-p", "-t", "top") }

// waitFor polls the screen until ok accepts it and returns that screen.
func (tm *tmux) waitFor(what string, timeout time.Duration, ok func(string) bool) string {
	tm.t.Helper()
	var s string
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		s = tm.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("after %s the screen does not show %s:\n%s", timeout, what, s)
		}
	}
}

func (tm *tmux) waitText(s string) string {
	tm.t.Helper()
	return tm.waitFor(fmt.Sprintf("%q", s), 15*time.Second, func(scr string) bool { return strings.Contains(scr, s) })
}

// stageRow returns the fields of a stage's row on top's screen: id, title
// words when shown, drops/s, total, peak/s.
func stageRow(scr string, id stage.ID) []string {
	for _, l := range strings.Split(scr, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "▶"))
		if len(f) > 0 && f[0] == string(id) {
			// The title is shown on terminals 100 columns wide or more.
			info, _ := stage.Lookup(id)
			title := strings.Fields(info.Title)
			n := 1
			if len(f) > 1 && f[1] == title[0] {
				n += len(title)
			}
			if len(f) >= n+3 {
				return f[:n+3]
			}
		}
	}
	return nil
}

// nstat reads one counter of a namespace with iproute2's nstat, the
// reference top's counts are compared with (-a absolute, -s without
// touching nstat's history file, -z with zeros).
func nstat(t *testing.T, ns, name string) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nstat", "-asz", name).CombinedOutput()
	if err != nil {
		t.Fatalf("nstat %s in %s: %v\n%s", name, ns, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("nstat shows no %s:\n%s", name, out)
	return 0
}

// restored says whether the pane is back on the main screen in canonical
// mode: tmux's alternate_on flag is off, and `stty -a` (run after top)
// printed icanon, not -icanon.
func (tm *tmux) restored(scr string) bool {
	alt := strings.TrimSpace(tm.run("display", "-p", "-t", "top", "#{alternate_on}"))
	canon := false
	for _, l := range strings.Split(scr, "\n") {
		switch strings.TrimSpace(l) {
		case "icanon":
			canon = true
		case "-icanon":
			return false
		}
	}
	return alt == "0" && canon
}

// TestTopInTmux runs `netdrop top` in a real terminal (tmux) on a lab fault:
// a UDP receiver whose 4 KiB buffer is full while datagrams keep coming.
// The socket-rcvbuf stage must show drops and diagnose's finding, the
// total since top started must equal nstat's count of Udp RcvbufErrors in
// the namespace, the keys must change the screen (focus, pause, interval,
// help), and q and SIGTERM must leave the terminal as it was.
func TestTopInTmux(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab builds network namespaces")
	}
	bin := build(t)
	scenarios, err := lab.Select([]string{"udp-rcvbuf"})
	if err != nil {
		t.Fatal(err)
	}
	inspected := false
	inspect := func(s lab.Scenario, e *lab.Env, r *lab.Result) {
		inspected = true
		if r.Found != stage.SocketRcvbuf {
			t.Errorf("the lab's own diagnosis found %q, not socket-rcvbuf: the fault is not in place", r.Found)
			return
		}
		topOnFault(t, bin, e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := lab.Run(ctx, scenarios, lab.Options{Inspect: inspect, Log: func(m string) { t.Log(m) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Error != "" {
			t.Errorf("%s: %s", r.Scenario, r.Error)
		}
	}
	if !inspected {
		t.Error("top never ran on the fault")
	}
}

func topOnFault(t *testing.T, bin string, e *lab.Env) {
	ns := e.Receiver.NS
	// The socket that overflowed in the scenario: the one to keep flooding.
	sum, err := sockets.Summarize(context.Background(), sockets.Options{Netns: counters.NamedNetns(ns), Top: -1})
	if err != nil {
		t.Fatal(err)
	}
	var dst netip.AddrPort
	for _, p := range sum.Pressure {
		if p.Protocol == "udp" && p.Drops > 0 {
			dst = p.Local
		}
	}
	if !dst.IsValid() {
		t.Fatalf("no UDP socket with drops in %s: %+v", ns, sum.Pressure)
	}

	tm := newTmux(t, 160, 50)
	tm.waitFor("the shell's prompt", 10*time.Second, func(s string) bool { return strings.HasPrefix(s, "$") })
	cmdline := fmt.Sprintf("%s top --netns %s -i 500ms --trace --sockets; echo TOP-EXIT=$?; stty -a | grep -o -- '-\\?icanon'", bin, ns)
	tm.keys(cmdline, "Enter")
	// The first sample is on the screen: top's baseline reading is taken.
	tm.waitFor("a first sample", 15*time.Second, func(s string) bool { return strings.Contains(s, " 1 samples") || strings.Contains(s, " 2 samples") })
	before := nstat(t, ns, "UdpRcvbufErrors")

	// Keep the full socket flooded for 3 s from the sender's namespace.
	flooded := make(chan error, 1)
	go func() { flooded <- flood(e, dst, 3*time.Second) }()
	scr := tm.waitFor("drops at socket-rcvbuf and diagnose's finding", 15*time.Second, func(s string) bool {
		f := stageRow(s, stage.SocketRcvbuf)
		return f != nil && f[len(f)-3] != "0" && strings.Contains(s, "UDP receive buffers full") && strings.Contains(s, ":"+strconv.Itoa(int(dst.Port())))
	})
	t.Logf("top during the fault:\n%s", scr)
	for _, s := range []string{"critical socket-rcvbuf", "SOCKET_RCVBUFF", "SOCKETS BY DROPS", dst.String()} {
		if !strings.Contains(scr, s) {
			t.Errorf("the screen during the fault lacks %q", s)
		}
	}
	if err := <-flooded; err != nil {
		t.Fatal(err)
	}
	want := nstat(t, ns, "UdpRcvbufErrors") - before
	if want == 0 {
		t.Fatal("nstat counted no receive-buffer drop: the flood did not reach the socket")
	}
	// Once top has read past the flood its total is nstat's.
	tm.waitFor(fmt.Sprintf("socket-rcvbuf total %d (nstat)", want), 10*time.Second, func(s string) bool {
		f := stageRow(s, stage.SocketRcvbuf)
		return f != nil && f[len(f)-2] == strconv.FormatUint(want, 10)
	})

	// Focus: select socket-rcvbuf and show its counters.
	for range stage.Index(stage.SocketRcvbuf) {
		tm.keys("j")
	}
	tm.keys("Enter")
	scr = tm.waitText("FOCUS socket-rcvbuf")
	var counterRow []string
	for _, l := range strings.Split(scr, "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "Udp:RcvbufErrors" {
			counterRow = f
		}
	}
	if counterRow == nil || counterRow[2] != strconv.FormatUint(want, 10) {
		t.Errorf("focus pane: Udp:RcvbufErrors row %v, want %d since start (nstat):\n%s", counterRow, want, scr)
	}
	for _, s := range []string{"cause:", "fix:", "net.core.rmem_max"} {
		if !strings.Contains(scr, s) {
			t.Errorf("focus pane lacks %q:\n%s", s, scr)
		}
	}
	tm.keys("Escape")
	tm.waitFor("the findings back", 5*time.Second, func(s string) bool { return !strings.Contains(s, "FOCUS") && strings.Contains(s, "FINDINGS") })

	// Pause freezes the screen while sampling goes on.
	tm.keys("p")
	scr = tm.waitText("PAUSED")
	frozen := samplesShown(t, scr)
	time.Sleep(1500 * time.Millisecond)
	if n := samplesShown(t, tm.screen()); n != frozen {
		t.Errorf("paused screen moved from %d to %d samples", frozen, n)
	}
	tm.keys("p")
	tm.waitFor("the screen live again", 5*time.Second, func(s string) bool {
		return !strings.Contains(s, "PAUSED") && samplesShown(t, s) > frozen
	})

	tm.keys("+")
	tm.waitText("every 1s")
	tm.keys("?")
	tm.waitText("KEYS")
	tm.keys("?")
	tm.waitFor("help closed", 5*time.Second, func(s string) bool { return !strings.Contains(s, "KEYS") })

	// A smaller window: top redraws to fit, hiding quiet stages but not
	// the one that dropped.
	tm.run("resize-window", "-t", "top", "-x", "90", "-y", "24")
	scr = tm.waitText("quiet stages hidden")
	if stageRow(scr, stage.SocketRcvbuf) == nil {
		t.Errorf("after the resize the dropping stage is hidden:\n%s", scr)
	}
	tm.run("resize-window", "-t", "top", "-x", "160", "-y", "50")
	tm.waitFor("every stage back after the resize", 5*time.Second, func(s string) bool {
		return !strings.Contains(s, "quiet stages hidden") && stageRow(s, stage.TxRing) != nil
	})

	tm.keys("q")
	tm.waitText("TOP-EXIT=0")
	scr = tm.waitFor("the terminal restored after q", 5*time.Second, tm.restored)
	if strings.Contains(scr, "FINDINGS") {
		t.Errorf("top's screen is left on the terminal after q:\n%s", scr)
	}

	// SIGTERM (a service manager, kill) also restores the terminal, and
	// the exit code says the signal.
	tm.keys("clear", "Enter")
	tm.keys(cmdline, "Enter")
	tm.waitText("FINDINGS")
	pid := childOf(t, strings.TrimSpace(tm.run("display", "-p", "-t", "top", "#{pane_pid}")))
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	tm.waitText(fmt.Sprintf("TOP-EXIT=%d", 128+int(syscall.SIGTERM)))
	tm.waitFor("the terminal restored after SIGTERM", 5*time.Second, tm.restored)
}

var samplesRe = regexp.MustCompile(`(\d+) samples`)

func samplesShown(t *testing.T, scr string) int {
	t.Helper()
	m := samplesRe.FindStringSubmatch(scr)
	if m == nil {
		t.Fatalf("no sample count on the screen:\n%s", scr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// childOf is the one child process of the pane's shell: netdrop top.
func childOf(t *testing.T, shell string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + shell + "/task/" + shell + "/children")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		t.Fatalf("the pane's shell %s has children %v, want one (netdrop top)", shell, f)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// flood sends 512-byte datagrams to dst from the lab's sender namespace for
// d, in bursts of 100 every 100 ms: a steady overflow of a full socket that
// nobody reads.
func flood(e *lab.Env, dst netip.AddrPort, d time.Duration) error {
	return e.Sender.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
		buf := make([]byte, 512)
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			for range 100 {
				if err := unix.Sendto(fd, buf, 0, to); err != nil && err != unix.EAGAIN && err != unix.ENOBUFS {
					return fmt.Errorf("send to %s: %w", dst, err)
				}
			}
		}
		return nil
	})
}
