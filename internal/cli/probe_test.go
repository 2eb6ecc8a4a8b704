package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
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
	for _, want := range []string{"s  recv ", "sent ", "received ", "lost ", "latency     p50", "unaccounted"} {
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
