package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/internal/tune"
	"github.com/netdrop/netdrop/stage"
)

func TestRenderTune(t *testing.T) {
	plan := &tune.Plan{
		Netns: "web",
		Items: []tune.Item{
			{Setting: tune.Setting{Kind: diagnose.ChangeSysctl, Target: "net.core.somaxconn"}, Current: "8", Proposed: "4096", Stage: stage.TCPListen,
				Severity: diagnose.Critical, Finding: "TCP accept queue full: 21 connection attempts dropped", Risk: "more pending connections", Note: "somaxconn caps the backlog of 10.0.0.2:8080"},
			{Setting: tune.Setting{Kind: diagnose.ChangeSysctl, Target: "net.core.rmem_max"}, Current: "212992", Proposed: "8388608", Stage: stage.SocketRcvbuf,
				Finding: "UDP receive buffer full", Skip: "read-only setting: sysctl net.core.rmem_max is read-only in namespace web"},
		},
		Application: []tune.AppNote{{Stage: stage.TCPListen, Finding: "TCP accept queue full", Advice: "accept in a dedicated loop"}},
		Manual: []tune.ManualStep{{Stage: stage.Qdisc, Finding: "qdisc pfifo_fast on eth0 dropped 12 packets", Fix: diagnose.Fix{
			Kind: diagnose.FixManual, Command: "tc qdisc replace dev eth0 root fq_codel", Now: "pfifo_fast", Note: "fair queueing",
			NotAutomatic: "replacing the root qdisc drops the packets queued in it"}}},
		NotAutomatic: []tune.AppNote{{Stage: stage.Netfilter, Finding: "firewall rules dropped 5 packets", Advice: "a rule may be policy"}},
	}
	var b bytes.Buffer
	if err := renderTune(&b, tuneOutput{Plan: plan, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	want := `Plan for namespace web (dry run: nothing changed; --apply to make it):

SETTING                    NOW     PROPOSED        STAGE          FINDING
sysctl net.core.somaxconn  8       4096            tcp-listen     TCP accept queue full: 21 connection attempts dropped
sysctl net.core.rmem_max   212992  (skip) 8388608  socket-rcvbuf  UDP receive buffer full

sysctl net.core.somaxconn:
  risk: more pending connections
  note: somaxconn caps the backlog of 10.0.0.2:8080
sysctl net.core.rmem_max:
  skipped: read-only setting: sysctl net.core.rmem_max is read-only in namespace web

The fix belongs in the application:
  [tcp-listen] TCP accept queue full: accept in a dedicated loop

By hand (tune does not make these):
  # [qdisc] qdisc pfifo_fast on eth0 dropped 12 packets: replacing the root qdisc drops the packets queued in it
  tc qdisc replace dev eth0 root fq_codel  # now pfifo_fast; fair queueing

No setting fixes these:
  [netfilter] firewall rules dropped 5 packets: a rule may be policy
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("renderTune (-want +got):\n%s", diff)
	}
}

// signalWriter collects what a command writes and closes ready when the
// first write containing marker arrives.
type signalWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	once   sync.Once
	ready  chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestTuneCommandApplyRollback runs netdrop tune as a user would against a
// namespace whose listener overflows (somaxconn 8, nobody accepts), with
// --apply, then netdrop tune --rollback with the file it wrote.
func TestTuneCommandApplyRollback(t *testing.T) {
	p := testnet.NewPair(t, "clitune")
	somax := filepath.Join("/proc/sys/net/core/somaxconn")
	if out := testnet.In(t, p.B, "sh", "-c", "echo 8 > "+somax+" && cat "+somax); out != "8\n" {
		t.Fatalf("somaxconn in %s: %q", p.B, out)
	}
	var fd int
	if err := netns.Do(p.B, func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Port: 8080}
		copy(sa.Addr[:], p.AddrB.To4())
		if err := unix.Bind(fd, sa); err != nil {
			return err
		}
		return unix.Listen(fd, 1024)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })

	rb := filepath.Join(t.TempDir(), "rollback.json")
	persist := filepath.Join(t.TempDir(), "60-netdrop.conf")
	stderr := &signalWriter{marker: "sampling", ready: make(chan struct{})}
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"tune", "--netns", p.B, "--interval", "2s", "--json", "--apply", "--rollback-file", rb, "--persist", persist}, &stdout, stderr)
	}()
	select {
	case <-stderr.ready:
	case <-ctx.Done():
		t.Fatal("tune never started sampling")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = netns.Do(p.A, func() error {
				c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:8080", p.AddrB), 500*time.Millisecond)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	if c := <-code; c != ExitOK {
		t.Fatalf("tune --apply exit %d\nstdout:\n%s\nstderr:\n%s", c, stdout.String(), stderr.String())
	}
	var out tuneOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("tune --json output: %v\n%s", err, stdout.String())
	}
	if out.DryRun || out.Applied == nil || out.Applied.RollbackFile != rb {
		t.Fatalf("tune output: %+v", out)
	}
	var proposed string
	for _, e := range out.Applied.Applied {
		if e.Setting.Target == "net.core.somaxconn" {
			proposed = e.Applied
			if string(e.Raw) != "8\n" {
				t.Errorf("rollback entry for somaxconn holds %q, want %q", e.Raw, "8\n")
			}
		}
	}
	if proposed == "" {
		t.Fatalf("somaxconn was not applied: %+v", out.Applied.Applied)
	}
	if got := testnet.In(t, p.B, "cat", somax); got != proposed+"\n" {
		t.Errorf("somaxconn after apply = %q, want %s", got, proposed)
	}
	conf, err := os.ReadFile(persist)
	if err != nil || !strings.Contains(string(conf), "\nnet.core.somaxconn = "+proposed+"\n") || out.Persist != persist {
		t.Errorf("--persist wrote (%v):\n%s", err, conf)
	}

	stdout.Reset()
	var errb bytes.Buffer
	if c := Main(context.Background(), []string{"tune", "--rollback", rb}, &stdout, &errb); c != ExitOK {
		t.Fatalf("tune --rollback exit %d: %s", c, errb.String())
	}
	if got := testnet.In(t, p.B, "cat", somax); got != "8\n" {
		t.Errorf("somaxconn after rollback = %q, want 8", got)
	}
	if !strings.Contains(stdout.String(), "sysctl net.core.somaxconn") {
		t.Errorf("rollback output:\n%s", stdout.String())
	}
	// A rollback file that does not exist is an error, not a silent no-op.
	if c := Main(context.Background(), []string{"tune", "--rollback", filepath.Join(t.TempDir(), "missing.json")}, io.Discard, &errb); c != ExitError {
		t.Errorf("rollback from a missing file: exit %d, want %d", c, ExitError)
	}
}

func TestExporterCommand(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"exporter", "--listen", "127.0.0.1:0", "--ready-file", ready, "--no-sockets"}, io.Discard, &stderr)
	}()
	var addr string
	for i := 0; i < 50 && addr == ""; i++ {
		if b, err := os.ReadFile(ready); err == nil {
			addr = strings.TrimSpace(string(b))
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("no ready file after 5 s; exit %d, stderr:\n%s", <-code, stderr.String())
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`netdrop_stage_drops_total{stage="socket-rcvbuf"} 0`, `netdrop_scrape_collector_success{collector="counters"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	select {
	case c := <-code:
		if c != ExitOK {
			t.Errorf("exporter exit %d after cancel, stderr:\n%s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exporter did not stop on cancel")
	}
	if c := Main(context.Background(), []string{"exporter", "--top", "0"}, io.Discard, io.Discard); c != ExitError {
		t.Errorf("--top 0: exit %d, want %d", c, ExitError)
	}
}
