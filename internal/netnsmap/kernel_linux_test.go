package netnsmap

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/netnsmap/netnsmaptest"
	"github.com/netdrop/netdrop/internal/testnet"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cgroup2Root is where the unified hierarchy is mounted, "" without one.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if ok && strings.HasPrefix(post, "cgroup2 ") {
			return unescapeMount(strings.Fields(pre)[4])
		}
	}
	return ""
}

// cgroupTree is a directory of the test's own at the root of the cgroup v2
// hierarchy, removed with everything below it at cleanup. Make it before
// the processes that go into it, so that its cleanup runs after theirs.
type cgroupTree struct{ base string }

func newCgroupTree(t *testing.T, top string) *cgroupTree {
	t.Helper()
	root := cgroup2Root(t)
	if root == "" {
		t.Log("no cgroup v2 hierarchy: processes stay in their cgroup")
		return &cgroupTree{}
	}
	base := filepath.Join(root, top)
	t.Cleanup(func() {
		var dirs []string
		_ = filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("cgroup left behind: %v", err)
			}
		}
	})
	return &cgroupTree{base: base}
}

// move makes the directory rel below the tree and moves pid into it. It
// returns false when the machine does not allow it (no cgroup2 mount, a
// read-only hierarchy).
func (c *cgroupTree) move(t *testing.T, rel string, pid int) bool {
	t.Helper()
	if c.base == "" {
		return false
	}
	dir := filepath.Join(c.base, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("cgroup v2 not writable here (%v): process %d stays in its cgroup", err, pid)
		return false
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Logf("moving %d into %s: %v", pid, dir, err)
		return false
	}
	return true
}

// start runs a command that lives until the test ends.
func start(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

// waitNetns waits until pid has left the namespace it was born in (unshare
// and ip netns exec switch before they exec the command).
func waitNetns(t *testing.T, pid int, not string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && l != not {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if strings.TrimSpace(string(comm)) == "sleep" {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not enter its namespace (%s, %v)", pid, l, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// lsnsCounts is the reference: util-linux lsns's process count per
// network namespace.
func lsnsCounts(t *testing.T) map[uint64]int {
	t.Helper()
	out := testnet.MustRun(t, "lsns", "-t", "net", "-n", "-r", "-o", "NS,NPROCS")
	m := map[uint64]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ino, _ := strconv.ParseUint(f[0], 10, 64)
		n, _ := strconv.Atoi(f[1])
		m[ino] = n
	}
	return m
}

// TestDiscoverKernel makes a pod-like namespace (bind-mounted, as CNI does,
// two processes in the kubelet's cgroup layout) and a container-like one
// (no mount, a Docker scope), answers CRI for the pod from a fake runtime,
// and checks Discover's map against lsns and the IDs the test gave.
func TestDiscoverKernel(t *testing.T) {
	testnet.RequireRoot(t)
	testnet.RequireTool(t, "lsns")
	testnet.RequireTool(t, "unshare")
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ndt-pods-%d", os.Getpid())
	testnet.MustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })

	uid := fmt.Sprintf("%s-%s-4%s-8%s-%s", randomHex(t, 8), randomHex(t, 4), randomHex(t, 4)[1:], randomHex(t, 4)[1:], randomHex(t, 12))
	pause, app, dock := randomHex(t, 64), randomHex(t, 64), randomHex(t, 64)
	top := fmt.Sprintf("netdrop-test-%d", os.Getpid())
	podDir := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"

	tree := newCgroupTree(t, top)
	p1 := start(t, "ip", "netns", "exec", name, "sleep", "60")
	p2 := start(t, "ip", "netns", "exec", name, "sleep", "60")
	p3 := start(t, "unshare", "-n", "sleep", "60")
	podLink := waitNetns(t, p1, self)
	waitNetns(t, p2, self)
	ctrLink := waitNetns(t, p3, self)
	podIno, _ := nsInode(podLink, "net")
	ctrIno, _ := nsInode(ctrLink, "net")
	cgroups := tree.move(t, podDir+"/cri-containerd-"+pause+".scope", p1) &&
		tree.move(t, podDir+"/cri-containerd-"+app+".scope", p2) &&
		tree.move(t, "system.slice/docker-"+dock+".scope", p3)
	if !cgroups && os.Getenv("CI") == "true" {
		t.Fatal("CI: cgroup v2 directories could not be made")
	}

	fake := &netnsmaptest.CRI{
		Sandboxes:  []*cri.PodSandbox{netnsmaptest.Sandbox(pause, "netdrop-test", "web-0", uid, cri.PodSandboxState_SANDBOX_READY)},
		Containers: []*cri.Container{{Id: app, PodSandboxId: pause, Metadata: &cri.ContainerMetadata{Name: "web"}}},
		// Without cgroups the pod is found the way a runtime without
		// per-container cgroups is: by the sandbox's namespace path.
		Info: map[string]string{pause: `{"netNamespacePath": "/run/netns/` + name + `"}`},
	}
	sock := netnsmaptest.Serve(t, fake)
	m, err := Discover(context.Background(), Options{CRISockets: []string{sock}})
	if err != nil {
		t.Fatal(err)
	}
	ref := lsnsCounts(t)

	pod, ok := m.Lookup(podIno)
	if !ok {
		t.Fatalf("pod namespace %s not found", podLink)
	}
	if pod.NumProcesses != 2 || ref[podIno] != 2 {
		t.Errorf("pod namespace: %d processes, lsns says %d, want 2", pod.NumProcesses, ref[podIno])
	}
	if want := "/run/netns/" + name; len(pod.Mounts) != 1 || pod.Mounts[0] != want {
		t.Errorf("pod namespace mounts = %q, want %s", pod.Mounts, want)
	}
	p, ok := pod.Pod()
	if !ok || p.String() != "netdrop-test/web-0" || p.UID != uid {
		t.Errorf("pod namespace's pod = %+v, want netdrop-test/web-0 (%s)", pod.Pods, uid)
	}
	if got, err := m.FindPod("netdrop-test/web-0"); err != nil || got != pod {
		t.Errorf("FindPod = %v, %v", got, err)
	}
	ctr, ok := m.Lookup(ctrIno)
	if !ok {
		t.Fatalf("container namespace %s not found", ctrLink)
	}
	if ctr.NumProcesses != ref[ctrIno] || len(ctr.Mounts) != 0 {
		t.Errorf("container namespace: %d processes (lsns %d), mounts %q", ctr.NumProcesses, ref[ctrIno], ctr.Mounts)
	}
	if cgroups {
		if len(pod.Containers) != 2 || pod.Containers[1].Name != "web" && pod.Containers[0].Name != "web" {
			t.Errorf("pod containers = %+v, want the pause and web", pod.Containers)
		}
		if len(ctr.Containers) != 1 || ctr.Containers[0].ID != dock || ctr.Containers[0].Runtime != RuntimeDocker {
			t.Errorf("container namespace's containers = %+v, want docker %s", ctr.Containers, dock[:12])
		}
		if got, err := m.FindContainer(dock[:12]); err != nil || got != ctr {
			t.Errorf("FindContainer = %v, %v", got, err)
		}
	}
	// Every namespace lsns lists with a process, Discover lists with the
	// same count (the host's aside: lsns counts kernel threads), and each
	// can be entered by its Target.
	for ino, n := range ref {
		got, ok := m.Lookup(ino)
		if !ok {
			t.Errorf("lsns lists namespace %d with %d processes; Discover does not", ino, n)
			continue
		}
		if !got.Host && got.NumProcesses != n && ino != podIno && ino != ctrIno {
			// Another helper's process may come or go between
			// the two reads; say so without failing.
			t.Logf("namespace %d: %d processes, lsns %d (processes may have changed between the reads)", ino, got.NumProcesses, n)
		}
	}
	for _, n := range []*Namespace{pod, ctr} {
		var in uint64
		if err := n.Target().Do(func() error {
			var err error
			in, err = netns.ID("")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if in != n.Inode {
			t.Errorf("entering %s landed in %d, want %d", n.Target(), in, n.Inode)
		}
	}
}
