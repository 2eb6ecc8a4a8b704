package netnsmap

import (
	"bufio"
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netdrop/netdrop/internal/netnsmap/netnsmaptest"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fixtureIDs reads testdata/host/ids, which mkfixture.sh wrote: the IDs it
// gave each pod and container, and the PIDs of its processes.
func fixtureIDs(t *testing.T) (map[string]string, []string) {
	t.Helper()
	f, err := os.Open("testdata/host/ids")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]string{}
	var pids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == "pids" {
			pids = strings.Fields(v)
			continue
		}
		ids[k] = v
	}
	return ids, pids
}

// denyFS answers EACCES for some paths, as /proc does for a process
// another user's (here PID 1, which even root could not read when the
// fixture was made).
type denyFS struct {
	FS
	deny map[string]bool
}

func (d denyFS) Readlink(name string) (string, error) {
	if d.deny[name] {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrPermission}
	}
	return d.FS.Readlink(name)
}

func fixtureFS() FS {
	return denyFS{FS: DirFS("testdata/host"), deny: map[string]bool{"/proc/1/ns/net": true}}
}

// summary is a namespace as tests compare it.
type summary struct {
	Inode      uint64
	Host, Self bool
	Mounts     []string
	Pids       []int
	Containers []Container
	Pods       []Pod
}

func summarize(m *Map) []summary {
	var out []summary
	for _, n := range m.Namespaces {
		s := summary{Inode: n.Inode, Host: n.Host, Self: n.Self, Mounts: n.Mounts, Containers: n.Containers, Pods: n.Pods}
		for _, p := range n.Processes {
			s.Pids = append(s.Pids, p.PID)
		}
		out = append(out, s)
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// wantFixture is the map of testdata/host without CRI: what the cgroups and
// the mount table say.
func wantFixture(t *testing.T) []summary {
	ids, p := fixtureIDs(t)
	pid := func(i int) int { return atoi(t, p[i]) }
	return []summary{
		{Inode: 4026531833, Host: true, Self: true, Pids: []int{pid(6), pid(7), pid(8)}, Containers: []Container{
			{ID: ids["podman-host"], Runtime: RuntimePodman},
			{ID: ids["docker-host"], Runtime: RuntimeDocker},
		}},
		{Inode: 4026532173, Mounts: []string{"/run/netns/pods-fx-a"}, Pids: []int{pid(0), pid(1)}, Containers: []Container{
			{ID: ids["sandbox-a"], Runtime: RuntimeContainerd, PodUID: ids["pod-a"]},
			{ID: ids["app-a"], Runtime: RuntimeContainerd, PodUID: ids["pod-a"]},
		}, Pods: []Pod{{UID: ids["pod-a"]}}},
		{Inode: 4026532238, Mounts: []string{"/run/netns/pods-fx-c"}, Pids: []int{pid(3), pid(4)}, Containers: []Container{
			{ID: ids["app-c"], Runtime: RuntimeCRIO, PodUID: ids["pod-c"]},
		}, Pods: []Pod{{UID: ids["pod-c"]}}},
		{Inode: 4026532305, Pids: []int{pid(2)}, Containers: []Container{{ID: ids["docker-b"], Runtime: RuntimeDocker}}},
		{Inode: 4026532372, Pids: []int{pid(5)}, Containers: []Container{{ID: ids["app-d"], PodUID: ids["pod-d"]}}, Pods: []Pod{{UID: ids["pod-d"]}}},
	}
}

func TestDiscoverFixture(t *testing.T) {
	m, err := Discover(context.Background(), Options{FS: fixtureFS(), CRISockets: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantFixture(t), summarize(m)); diff != "" {
		t.Errorf("Discover (-want +got):\n%s", diff)
	}
	if m.Hidden != 1 {
		t.Errorf("Hidden = %d, want 1 (PID 1)", m.Hidden)
	}
	if len(m.Problems) != 1 || !strings.Contains(m.Problems[0], "needs root") {
		t.Errorf("Problems = %q, want one saying why PID 1 is hidden", m.Problems)
	}
	ids, _ := fixtureIDs(t)
	n, err := m.FindContainer(ids["docker-b"][:12])
	if err != nil || n.Inode != 4026532305 {
		t.Errorf("FindContainer(docker-b) = %v, %v", n, err)
	}
	if _, err := m.FindPod("shop/web-0"); err == nil || !strings.Contains(err.Error(), "UID only") {
		t.Errorf("FindPod without CRI: err = %v, want one saying pods are known by UID only", err)
	}
	if n, err := m.FindPod(ids["pod-d"]); err != nil || n.Inode != 4026532372 {
		t.Errorf("FindPod(uid) = %v, %v", n, err)
	}
	for _, n := range m.Namespaces {
		if got := n.Targets(); len(got) == 0 {
			t.Errorf("namespace %d: no target", n.Inode)
		}
	}
	if got := m.Namespaces[1].Label(); got != "pods-fx-a" {
		t.Errorf("Label = %q, want the ip-netns name", got)
	}
}

func TestDiscoverCRI(t *testing.T) {
	ids, _ := fixtureIDs(t)
	const uidE = "0e0e0e0e-0000-4000-8000-000000000001"
	sbE := strings.Repeat("e", 64)
	fake := &netnsmaptest.CRI{
		Sandboxes: []*cri.PodSandbox{
			netnsmaptest.Sandbox(ids["sandbox-a"], "shop", "web-0", ids["pod-a"], cri.PodSandboxState_SANDBOX_READY),
			// An old sandbox of the same pod, stopped: not the pod's.
			netnsmaptest.Sandbox(strings.Repeat("0", 64), "shop", "web-0-old", ids["pod-a"], cri.PodSandboxState_SANDBOX_NOTREADY),
			netnsmaptest.Sandbox(strings.Repeat("d", 64), "batch", "job-7", ids["pod-d"], cri.PodSandboxState_SANDBOX_READY),
			// No process of its own in the fixture; its verbose
			// status names docker-b's namespace by that process's PID.
			netnsmaptest.Sandbox(sbE, "edge", "proxy-1", uidE, cri.PodSandboxState_SANDBOX_READY),
		},
		Containers: []*cri.Container{
			{Id: ids["app-a"], PodSandboxId: ids["sandbox-a"], Metadata: &cri.ContainerMetadata{Name: "web"}},
			{Id: ids["app-d"], PodSandboxId: strings.Repeat("d", 64), Metadata: &cri.ContainerMetadata{Name: "worker"}},
		},
	}
	_, pids := fixtureIDs(t)
	fake.Info = map[string]string{sbE: `{"pid": ` + pids[2] + `, "runtimeSpec": {"linux": {"namespaces": [{"type": "pid"}]}}}`}
	sock := netnsmaptest.Serve(t, fake)
	m, err := Discover(context.Background(), Options{FS: fixtureFS(), CRISockets: []string{sock, filepath.Join(t.TempDir(), "absent.sock")}})
	if err != nil {
		t.Fatal(err)
	}
	want := wantFixture(t)
	want[1].Containers[0].Name = ""
	want[1].Containers[1].Name = "web"
	want[1].Pods = []Pod{{Namespace: "shop", Name: "web-0", UID: ids["pod-a"], SandboxID: ids["sandbox-a"], Runtime: sock}}
	want[3].Pods = []Pod{{Namespace: "edge", Name: "proxy-1", UID: uidE, SandboxID: sbE, Runtime: sock}}
	want[4].Containers[0].Name = "worker"
	want[4].Containers[0].Runtime = RuntimeNone // the socket's path names no runtime
	want[4].Pods = []Pod{{Namespace: "batch", Name: "job-7", UID: ids["pod-d"], SandboxID: strings.Repeat("d", 64), Runtime: sock}}
	if diff := cmp.Diff(want, summarize(m), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Discover with CRI (-want +got):\n%s", diff)
	}
	if len(m.Problems) != 1 {
		t.Errorf("Problems = %q, want only PID 1's (an absent socket is no problem)", m.Problems)
	}
	n, err := m.FindPod("shop/web-0")
	if err != nil || n.Inode != 4026532173 {
		t.Fatalf("FindPod(shop/web-0) = %v, %v", n, err)
	}
	if p, ok := n.Pod(); !ok || p.String() != "shop/web-0" {
		t.Errorf("Pod() = %v, %v", p, ok)
	}
	if n, err := m.FindContainer("worker"); err != nil || n.Inode != 4026532372 {
		t.Errorf("FindContainer(worker) = %v, %v", n, err)
	}
	if _, err := m.FindPod("shop/absent"); err == nil {
		t.Error("FindPod(shop/absent) found one")
	}
}

// A socket that exists but serves no CRI is a problem that says so, and the
// map is still made from /proc.
func TestDiscoverCRIErrors(t *testing.T) {
	unimpl := netnsmaptest.Serve(t, &cri.UnimplementedRuntimeServiceServer{})
	dead := filepath.Join(t.TempDir(), "dead.sock")
	ln, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: a runtime that died
	m, err := Discover(context.Background(), Options{FS: fixtureFS(), CRISockets: []string{unimpl, dead}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.Problems, "\n")
	for _, want := range []string{"does not serve the CRI v1 API", "runtime not answering"} {
		if !strings.Contains(got, want) {
			t.Errorf("Problems = %q, want one with %q", m.Problems, want)
		}
	}
	if len(m.Namespaces) != 5 {
		t.Errorf("%d namespaces, want the fixture's 5", len(m.Namespaces))
	}
}

// TestDiscoverCRICache discovers three times with one Cache: the second
// asks the runtime for no sandbox's status and finds the same map; a
// sandbox the runtime no longer lists is forgotten, and asked for again
// when it comes back.
func TestDiscoverCRICache(t *testing.T) {
	_, pids := fixtureIDs(t)
	sbE := strings.Repeat("e", 64)
	fake := &netnsmaptest.CRI{
		Sandboxes: []*cri.PodSandbox{netnsmaptest.Sandbox(sbE, "edge", "proxy-1", "0e0e0e0e-0000-4000-8000-000000000001", cri.PodSandboxState_SANDBOX_READY)},
		Info:      map[string]string{sbE: `{"pid": ` + pids[2] + `}`},
	}
	sock := netnsmaptest.Serve(t, fake)
	cache := &Cache{}
	discover := func() []summary {
		t.Helper()
		m, err := Discover(context.Background(), Options{FS: fixtureFS(), CRISockets: []string{sock}, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		return summarize(m)
	}
	first := discover()
	if n := fake.StatusCalls.Load(); n != 1 {
		t.Fatalf("%d status calls for one sandbox no process leads to", n)
	}
	if second := discover(); !cmp.Equal(first, second, cmpopts.EquateEmpty()) {
		t.Errorf("the cached map differs:\n%s", cmp.Diff(first, second, cmpopts.EquateEmpty()))
	}
	if n := fake.StatusCalls.Load(); n != 1 {
		t.Errorf("%d status calls after a second Discover, want the first's only", n)
	}
	sandboxes := fake.Sandboxes
	fake.Sandboxes = nil
	discover()
	if len(cache.netns) != 0 {
		t.Errorf("cache keeps %v after the sandbox went", cache.netns)
	}
	fake.Sandboxes = sandboxes
	if again := discover(); !cmp.Equal(first, again, cmpopts.EquateEmpty()) || fake.StatusCalls.Load() != 2 {
		t.Errorf("sandbox back: %d status calls, map differs: %s", fake.StatusCalls.Load(), cmp.Diff(first, again, cmpopts.EquateEmpty()))
	}
}

// memFS is a host of a few processes for tests that need namespaces the
// fixture does not have.
type memFS struct {
	files map[string]string
	links map[string]string
}

func (m memFS) ReadFile(name string) ([]byte, error) {
	if b, ok := m.files[name]; ok {
		return []byte(b), nil
	}
	return nil, fs.ErrNotExist
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	seen := map[string]bool{}
	var out []fs.DirEntry
	for _, set := range []map[string]string{m.files, m.links} {
		for p := range set {
			rest, ok := strings.CutPrefix(p, name+"/")
			if !ok {
				continue
			}
			first, _, _ := strings.Cut(rest, "/")
			if !seen[first] {
				seen[first] = true
				out = append(out, fs.FileInfoToDirEntry(memDir(first)))
			}
		}
	}
	return out, nil
}

func (m memFS) Readlink(name string) (string, error) {
	if l, ok := m.links[name]; ok {
		return l, nil
	}
	return "", fs.ErrNotExist
}

type memDir string

func (d memDir) Name() string       { return string(d) }
func (d memDir) Size() int64        { return 0 }
func (d memDir) Mode() fs.FileMode  { return fs.ModeDir }
func (d memDir) ModTime() time.Time { return time.Time{} }
func (d memDir) IsDir() bool        { return true }
func (d memDir) Sys() any           { return nil }

// MayOwn is false exactly for the namespaces Discover gives no pod and no
// container, and true for every namespace while a CRI socket exists.
func TestMayOwn(t *testing.T) {
	id := strings.Repeat("ab", 32)
	small := memFS{
		files: map[string]string{
			"/proc/self/mountinfo": "",
			"/proc/10/stat":        "10 (sh) S 1 10 10 0 -1 4194304 0 0",
			"/proc/10/cgroup":      "0::/user.slice\n",
			"/proc/11/stat":        "11 (nginx) S 1 11 11 0 -1 4194304 0 0",
			"/proc/11/cgroup":      "0::/system.slice/docker-" + id + ".scope\n",
		},
		links: map[string]string{
			"/proc/self/ns/net": "net:[100]",
			"/proc/10/ns/net":   "net:[100]",
			"/proc/11/ns/net":   "net:[200]",
		},
	}
	for _, tt := range []struct {
		name string
		fsys FS
	}{{"fixture", fixtureFS()}, {"two namespaces", small}} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Discover(context.Background(), Options{FS: tt.fsys, CRISockets: []string{}})
			if err != nil {
				t.Fatal(err)
			}
			sock := netnsmaptest.Serve(t, &netnsmaptest.CRI{})
			for _, n := range m.Namespaces {
				want := len(n.Pods) > 0 || len(n.Containers) > 0
				if got := MayOwn(Options{FS: tt.fsys, CRISockets: []string{}}, n.Inode); got != want {
					t.Errorf("MayOwn(%s) = %v; Discover gives pods %v, containers %v", n.Label(), got, n.Pods, n.Containers)
				}
				if !MayOwn(Options{FS: tt.fsys, CRISockets: []string{sock}}, n.Inode) {
					t.Errorf("MayOwn(%s) with a CRI socket = false", n.Label())
				}
			}
		})
	}
	if MayOwn(Options{FS: small, CRISockets: []string{filepath.Join(t.TempDir(), "absent.sock")}}, 300) {
		t.Error("MayOwn of a namespace no process is in, no CRI socket = true")
	}
	// Both answers occur.
	if MayOwn(Options{FS: small, CRISockets: []string{}}, 100) || !MayOwn(Options{FS: small, CRISockets: []string{}}, 200) {
		t.Error("MayOwn: want false for the shell's namespace, true for the container's")
	}
}
