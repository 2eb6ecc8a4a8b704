package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netnsmap/netnsmaptest"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/stage"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podNetns makes a namespace that a fake CRI runtime says is pod
// netdrop-test/NAME's (its sandbox's verbose status names the bind mount,
// as containerd's does) and returns the namespace's name and the socket.
func podNetns(t *testing.T, names ...string) ([]string, string) {
	t.Helper()
	fake := &netnsmaptest.CRI{Info: map[string]string{}}
	var out []string
	for i, name := range names {
		ns := fmt.Sprintf("ndt-podsall-%d-%d", os.Getpid(), i)
		testnet.MustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		testnet.MustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
		id := fmt.Sprintf("%064x", os.Getpid()*100+i)
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", os.Getpid()*100+i)
		fake.Sandboxes = append(fake.Sandboxes, netnsmaptest.Sandbox(id, "netdrop-test", name, uid, cri.PodSandboxState_SANDBOX_READY))
		fake.Info[id] = `{"netNamespacePath": "/run/netns/` + ns + `"}`
		out = append(out, ns)
	}
	return out, netnsmaptest.Serve(t, fake)
}

// TestDiagnoseAllNetnsKernel diagnoses every namespace of the host while
// one pod's namespace drops UDP datagrams to a closed port and another
// stays quiet: the harmed one must rank above the quiet one, carry its pod
// label, and count what nstat counts there.
func TestDiagnoseAllNetnsKernel(t *testing.T) {
	testnet.RequireRoot(t)
	testnet.RequireTool(t, "nstat")
	nss, sock := podNetns(t, "dropper-0", "quiet-0")
	before := testnet.Nstat(t, nss[0], "UdpNoPorts")

	stderr := &signalWriter{marker: "sampling", ready: make(chan struct{})}
	var stdout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"diagnose", "--all-netns", "--interval", "3s", "--json", "--cri-socket", sock}, &stdout, stderr)
	}()
	var sent int
	select {
	case <-stderr.ready:
		// Every first snapshot is taken: the drops fall in the interval.
		sent = testnet.SendUDP(t, nss[0], "127.0.0.1:9", 200, 64)
	case code := <-done:
		t.Fatalf("diagnose exited %d before sampling: %s", code, stderr.String())
	}
	code := <-done
	ref := testnet.Nstat(t, nss[0], "UdpNoPorts") - before
	if ref != uint64(sent) || sent == 0 {
		t.Fatalf("nstat UdpNoPorts moved by %d for %d datagrams sent", ref, sent)
	}
	if code != ExitFindings {
		t.Errorf("exit %d, want %d (a critical finding); stderr:\n%s", code, ExitFindings, stderr.String())
	}
	var a allNetnsReport
	if err := json.Unmarshal(stdout.Bytes(), &a); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	rank := map[string]netnsDiagnosis{}
	for _, d := range a.Namespaces {
		rank[d.Owner.Netns] = d
	}
	dropper, quiet := rank[nss[0]], rank[nss[1]]
	if dropper.Report == nil || quiet.Report == nil {
		t.Fatalf("namespaces %v missing from %d blocks:\n%s", nss, len(a.Namespaces), stdout.String())
	}
	if dropper.Rank >= quiet.Rank {
		t.Errorf("dropper ranked #%d, quiet #%d: want the harmed one first", dropper.Rank, quiet.Rank)
	}
	if dropper.Owner.Pod != "dropper-0" || dropper.Owner.PodNamespace != "netdrop-test" {
		t.Errorf("dropper's owner = %+v, want pod netdrop-test/dropper-0", dropper.Owner)
	}
	var noSocket uint64
	for _, s := range dropper.Report.Stages {
		if s.Stage == stage.NoSocket {
			noSocket = s.Drops
		}
	}
	if noSocket != ref {
		t.Errorf("no-socket drops = %d, nstat UdpNoPorts %d", noSocket, ref)
	}
	for _, f := range dropper.Report.Findings {
		if f.Owner == nil || f.Owner.Pod != "dropper-0" {
			t.Errorf("finding %q has owner %+v, want the pod's", f.Title, f.Owner)
		}
		if f.HostWide {
			t.Errorf("finding %q is host-wide: those belong to the host's block", f.Title)
		}
	}
	if quiet.Worst != "" || quiet.Drops != 0 {
		t.Errorf("quiet namespace: worst %q, %d drops; want none:\n%+v", quiet.Worst, quiet.Drops, quiet.Report.Findings)
	}
	// The same diagnosis as text names the pod in the block's heading.
	var text bytes.Buffer
	if code := Main(ctx, []string{"diagnose", "--pod", "netdrop-test/dropper-0", "--once", "--cri-socket", sock}, &text, &bytes.Buffer{}); code != ExitFindings {
		t.Errorf("diagnose --pod exit %d, want %d:\n%s", code, ExitFindings, text.String())
	}
	if first, _, _ := strings.Cut(text.String(), "\n"); !strings.Contains(first, "pod netdrop-test/dropper-0") || !strings.Contains(first, "netns "+nss[0]) {
		t.Errorf("diagnose --pod heading = %q, want the pod and its namespace", first)
	}
	var r diagnose.Report
	var js bytes.Buffer
	Main(ctx, []string{"diagnose", "--pod", "netdrop-test/quiet-0", "--once", "--json", "--cri-socket", sock}, &js, &bytes.Buffer{})
	if err := json.Unmarshal(js.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, js.String())
	}
	if r.Owner == nil || r.Owner.Pod != "quiet-0" || r.Netns != "/run/netns/"+nss[1] {
		t.Errorf("diagnose --pod quiet-0: netns %q owner %+v", r.Netns, r.Owner)
	}
	// netdrop sockets labels a pod's namespace the same way, whether
	// chosen by --pod or by --netns.
	for _, args := range [][]string{
		{"sockets", "--pod", "netdrop-test/quiet-0", "--json", "--cri-socket", sock},
		{"sockets", "--netns", nss[1], "--json", "--cri-socket", sock},
	} {
		var out bytes.Buffer
		if code := Main(ctx, args, &out, &bytes.Buffer{}); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, out.String())
		}
		var got struct {
			Netns string          `json:"netns"`
			Owner *diagnose.Owner `json:"owner"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		if got.Owner == nil || got.Owner.Pod != "quiet-0" || got.Owner.Netns != nss[1] {
			t.Errorf("%v: owner %+v, want pod quiet-0 in %s", args, got.Owner, nss[1])
		}
	}
}
