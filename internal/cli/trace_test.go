package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/testnet"
)

func TestTraceUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"trace", "--proto", "sctp"},
		{"trace", "--host", "not-an-address"},
		{"trace", "--interval", "-1s"},
		{"trace", "extra-arg"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != ExitError {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, ExitError, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}

// TestTraceJSONInNamespace runs `netdrop trace --netns B --json` while
// datagrams hit a closed port in B, and checks the summary line: as many
// NO_SOCKET drops as Udp NoPorts moved, at stage no-socket, on b0.
func TestTraceJSONInNamespace(t *testing.T) {
	testnet.RequireRoot(t)
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("kernel test: no kernel BTF")
	}
	p := testnet.NewPair(t, "clitrace")
	ready := t.TempDir() + "/ready"
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(context.Background(), []string{"trace", "--netns", p.B, "--json", "--flows",
			"--duration", "3s", "--interval", "0", "--ready-file", ready}, &out, &errb)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace not ready in 10s: %s", errb.String())
		}
	}
	before := testnet.Nstat(t, p.B, "UdpNoPorts")
	dst := (&net.UDPAddr{IP: p.AddrB, Port: 7791}).String()
	testnet.SendUDP(t, p.A, dst, 50, 32)
	time.Sleep(200 * time.Millisecond)
	noPorts := testnet.Nstat(t, p.B, "UdpNoPorts") - before
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var sum struct {
		Type string `json:"type"`
		Rows []struct {
			Count  uint64 `json:"count"`
			Reason string `json:"reason"`
			Stage  string `json:"stage"`
			Ifname string `json:"ifname"`
			Flows  []struct {
				Dst string `json:"dst"`
			} `json:"flows"`
		} `json:"rows"`
		LostEvents *uint64 `json:"lost_events"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out.String())
	}
	if sum.Type != "summary" || sum.LostEvents == nil {
		t.Fatalf("last line %q: want a summary with lost_events", lines[len(lines)-1])
	}
	var got uint64
	for _, r := range sum.Rows {
		if r.Reason != "NO_SOCKET" {
			continue
		}
		got += r.Count
		if r.Stage != "no-socket" || r.Ifname != "b0" || len(r.Flows) == 0 || !strings.HasSuffix(r.Flows[0].Dst, ":7791") {
			t.Errorf("NO_SOCKET row %+v: want stage no-socket on b0 with flows to :7791", r)
		}
	}
	if noPorts == 0 || got != noPorts {
		t.Errorf("trace counted %d NO_SOCKET, Udp NoPorts moved %d", got, noPorts)
	}
}
