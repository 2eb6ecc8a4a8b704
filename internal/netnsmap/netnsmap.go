// Package netnsmap maps the network namespaces of a host to what runs in
// them: the processes (through /proc/PID/ns/net), the names bind mounts give
// them (/run/netns, /var/run/netns, a runtime's own directory), the container
// each process's cgroup path names, and, where a CRI runtime socket answers
// (containerd, CRI-O), the Kubernetes pod. It needs no Kubernetes API: the
// node's own runtime knows its pods.
//
// It reads and names; it does not enter namespaces (internal/netns does,
// through the Target a Namespace gives) and it judges nothing.
package netnsmap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
)

// MaxProcesses is how many processes a Namespace lists by name; the count
// covers the rest. A host namespace holds hundreds, and a report or a label
// needs a few to recognise it by.
const MaxProcesses = 5

// DefaultCRISockets are the runtime sockets asked for pods when they exist:
// containerd's and CRI-O's defaults.
var DefaultCRISockets = []string{"/run/containerd/containerd.sock", "/run/crio/crio.sock"}

// Options configures Discover.
type Options struct {
	// FS is where /proc is read; nil reads the running host.
	FS FS
	// CRISockets are the CRI endpoints (unix socket paths) to ask for
	// pods; nil means DefaultCRISockets, an empty non-nil slice none.
	// A socket that does not exist is skipped without a word; one that
	// exists but does not answer is a Problem.
	CRISockets []string
	// CRITimeout bounds the questions to each runtime; 0 means 2 s.
	CRITimeout time.Duration
	// Cache, when set, keeps between calls what holds for a pod
	// sandbox's lifetime; a caller that discovers again and again (the
	// exporter, every scrape) sets one.
	Cache *Cache
}

// Cache keeps, between Discover calls, the network namespace of each pod
// sandbox found through its runtime's verbose status: a sandbox keeps its
// namespace for as long as it lives, and asking for every sandbox's status
// on every call costs one round trip to the runtime each (200 pods: some
// 25 ms a call). The sandboxes are listed afresh each time, and those no
// longer listed are forgotten. The zero Cache is ready to use; it is safe
// for concurrent use.
type Cache struct {
	mu    sync.Mutex
	netns map[sandboxKey]uint64
}

// sandboxKey is a sandbox of one runtime.
type sandboxKey struct{ sock, id string }

// lookup returns the namespace inode kept for a sandbox.
func (c *Cache) lookup(k sandboxKey) (uint64, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ino, ok := c.netns[k]
	return ino, ok
}

// store keeps a sandbox's namespace inode.
func (c *Cache) store(k sandboxKey, ino uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.netns == nil {
		c.netns = map[sandboxKey]uint64{}
	}
	c.netns[k] = ino
}

// forget drops the sandboxes of runtime sock that listed does not hold.
func (c *Cache) forget(sock string, listed func(id string) bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.netns {
		if k.sock == sock && !listed(k.id) {
			delete(c.netns, k)
		}
	}
}

// Process is one process of a namespace.
type Process struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	Cgroup Cgroup `json:"cgroup"`
}

// Container is a container with a process in a namespace.
type Container struct {
	ID      string  `json:"id"`
	Runtime Runtime `json:"runtime,omitempty"`
	// Name is the container's name in its pod, from CRI; empty without.
	Name string `json:"name,omitempty"`
	// PodUID is the pod the container's cgroup or CRI places it in.
	PodUID string `json:"pod_uid,omitempty"`
}

// Short is the container ID as runtimes print it: its first 12 digits.
func (c Container) Short() string { return shortID(c.ID) }

// Pod is a Kubernetes pod, as its runtime knows it.
type Pod struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	UID       string `json:"uid"`
	// SandboxID is the pod sandbox's ID in the runtime (empty when the
	// pod is known from its cgroup only).
	SandboxID string `json:"sandbox_id,omitempty"`
	// Runtime is the CRI socket that answered for the pod.
	Runtime string `json:"runtime_endpoint,omitempty"`
}

// String is the pod as kubectl names it: NAMESPACE/NAME, or its UID when the
// runtime was not asked.
func (p Pod) String() string {
	if p.Name == "" {
		return "pod " + p.UID
	}
	return p.Namespace + "/" + p.Name
}

// Namespace is one network namespace of the host.
type Namespace struct {
	// Inode identifies the namespace (as `lsns -t net` and `ip netns
	// identify` do).
	Inode uint64 `json:"inode"`
	// Host marks the initial namespace (where kernel threads are); Self
	// the one netdrop runs in.
	Host bool `json:"host,omitempty"`
	Self bool `json:"self,omitempty"`
	// Mounts are the namespace's bind mounts, as /run/netns/NAME.
	Mounts []string `json:"mounts,omitempty"`
	// Processes are the first MaxProcesses by PID; NumProcesses counts
	// them all.
	Processes    []Process   `json:"processes"`
	NumProcesses int         `json:"process_count"`
	Containers   []Container `json:"containers,omitempty"`
	Pods         []Pod       `json:"pods,omitempty"`

	pids []int // every process, to enter through one that still lives
}

// Name is the namespace's bind mount name under /run/netns (as `ip netns`
// lists it), else the base name of its first bind mount, else "".
func (n *Namespace) Name() string {
	for _, m := range n.Mounts {
		if name, ok := strings.CutPrefix(m, netns.RunDir+"/"); ok {
			return name
		}
	}
	if len(n.Mounts) > 0 {
		m := n.Mounts[0]
		return m[strings.LastIndexByte(m, '/')+1:]
	}
	return ""
}

// Label is the namespace in a few words, for a report's heading and a
// metric's netns label: host, its ip-netns name, net:[INODE].
func (n *Namespace) Label() string {
	switch {
	case n.Host:
		return "host"
	case n.Name() != "":
		return n.Name()
	}
	return fmt.Sprintf("net:[%d]", n.Inode)
}

// Pod is the namespace's pod when exactly one pod has it (host-network pods
// share the host's), else the zero Pod.
func (n *Namespace) Pod() (Pod, bool) {
	if len(n.Pods) != 1 {
		return Pod{}, false
	}
	return n.Pods[0], true
}

// Target is how to enter the namespace: the current one when netdrop runs
// in it, else its bind mount, else the namespace of its first process that
// is still there.
func (n *Namespace) Target() netns.Target {
	switch {
	case n.Self:
		return netns.Current()
	case len(n.Mounts) > 0:
		return netns.AtPath(n.Mounts[0])
	case len(n.pids) > 0:
		return netns.OfPID(n.pids[0])
	}
	return netns.AtPath(fmt.Sprintf("net:[%d]", n.Inode)) // fails to open, with the inode in the error
}

// Targets are every way to enter the namespace, best first: Do tries the
// next when a process exits between Discover and the entry.
func (n *Namespace) Targets() []netns.Target {
	var out []netns.Target
	if n.Self {
		out = append(out, netns.Current())
	}
	for _, m := range n.Mounts {
		out = append(out, netns.AtPath(m))
	}
	for _, pid := range n.pids {
		out = append(out, netns.OfPID(pid))
	}
	return out
}

// Map is every network namespace Discover found.
type Map struct {
	Namespaces []*Namespace `json:"namespaces"`
	// Hidden counts processes whose namespace could not be read (another
	// user's, without privilege).
	Hidden int `json:"hidden_processes,omitempty"`
	// Problems say what could not be read and why: a CRI socket that did
	// not answer, processes hidden for lack of privilege.
	Problems []string `json:"problems,omitempty"`
}

// Lookup returns the namespace with this inode.
func (m *Map) Lookup(inode uint64) (*Namespace, bool) {
	for _, n := range m.Namespaces {
		if n.Inode == inode {
			return n, true
		}
	}
	return nil, false
}

// ErrNotFound is returned when no namespace holds the pod or container asked
// for.
var ErrNotFound = errors.New("not found")

// FindPod returns the namespace of pod NAMESPACE/NAME (or a pod UID).
func (m *Map) FindPod(spec string) (*Namespace, error) {
	ns, name, ok := strings.Cut(spec, "/")
	for _, n := range m.Namespaces {
		for _, p := range n.Pods {
			if (ok && p.Namespace == ns && p.Name == name) || (!ok && p.UID == spec) {
				return n, nil
			}
		}
	}
	if ok && !m.askedCRI() {
		return nil, fmt.Errorf("pod %s: %w (no CRI runtime socket answered, so pods are known by UID only: %s)", spec, ErrNotFound, strings.Join(m.Problems, "; "))
	}
	return nil, fmt.Errorf("pod %s: %w in any network namespace of this host", spec, ErrNotFound)
}

// askedCRI reports whether any namespace's pod came from a runtime.
func (m *Map) askedCRI() bool {
	for _, n := range m.Namespaces {
		for _, p := range n.Pods {
			if p.SandboxID != "" {
				return true
			}
		}
	}
	return false
}

// FindContainer returns the namespace of the container whose ID starts with
// prefix (at least 4 digits, unique, as docker accepts it) or whose CRI name
// is prefix.
func (m *Map) FindContainer(prefix string) (*Namespace, error) {
	var hits []*Namespace
	var ids []string
	for _, n := range m.Namespaces {
		for _, c := range n.Containers {
			if (len(prefix) >= 4 && strings.HasPrefix(c.ID, prefix)) || c.Name == prefix {
				if !slices.Contains(hits, n) {
					hits = append(hits, n)
				}
				ids = append(ids, c.Short())
			}
		}
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("container %s: %w in any network namespace of this host", prefix, ErrNotFound)
	case 1:
		return hits[0], nil
	}
	return nil, fmt.Errorf("container %s is ambiguous: %s", prefix, strings.Join(ids, ", "))
}

// Discover walks /proc once and asks the CRI runtimes, if any, for pods.
// Processes that exit during the walk are left out; processes it may not
// read are counted in Hidden.
func Discover(ctx context.Context, opts Options) (*Map, error) {
	fsys := opts.FS
	if fsys == nil {
		fsys = DirFS("/")
	}
	m, err := walk(fsys)
	if err != nil {
		return nil, err
	}
	sockets := opts.CRISockets
	if sockets == nil {
		sockets = DefaultCRISockets
	}
	timeout := cmp.Or(opts.CRITimeout, 2*time.Second)
	for _, sock := range sockets {
		if err := addPods(ctx, m, fsys, sock, timeout, opts.Cache); err != nil {
			m.Problems = append(m.Problems, err.Error())
		}
	}
	return m, nil
}

// walk reads /proc and the mount table into a map without pods' names.
func walk(fsys FS) (*Map, error) {
	byInode := map[uint64]*Namespace{}
	get := func(ino uint64) *Namespace {
		n := byInode[ino]
		if n == nil {
			n = &Namespace{Inode: ino}
			byInode[ino] = n
		}
		return n
	}
	m := &Map{}
	if l, err := fsys.Readlink("/proc/self/ns/net"); err == nil {
		if ino, ok := nsInode(l, "net"); ok {
			get(ino).Self = true
		}
	}
	if b, err := fsys.ReadFile("/proc/self/mountinfo"); err != nil {
		m.Problems = append(m.Problems, fmt.Sprintf("bind-mounted namespaces not listed: %v", err))
	} else {
		mounts, err := parseNetnsMounts(b)
		if err != nil {
			m.Problems = append(m.Problems, fmt.Sprintf("bind-mounted namespaces: /proc/self/mountinfo: %v", err))
		}
		for _, mt := range mounts {
			n := get(mt.Inode)
			if !slices.Contains(n.Mounts, mt.Path) {
				n.Mounts = append(n.Mounts, mt.Path)
			}
		}
	}
	ents, err := fsys.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	procs := map[uint64][]Process{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, ino, err := readProcess(fsys, pid)
		switch {
		case errors.Is(err, errKernelThread):
			// Kernel threads live in the initial namespace: the
			// host's, even where PID 1 is a container's init or
			// cannot be read.
			get(ino).Host = true
			continue
		case errors.Is(err, fs.ErrNotExist):
			continue // exited during the walk
		case errors.Is(err, fs.ErrPermission):
			m.Hidden++
			continue
		case err != nil:
			m.Problems = append(m.Problems, fmt.Sprintf("process %d: %v", pid, err))
			continue
		}
		procs[ino] = append(procs[ino], p)
		get(ino)
	}
	if m.Hidden > 0 {
		m.Problems = append(m.Problems, fmt.Sprintf("%d processes' namespaces not readable: reading other users' /proc/PID/ns/net needs root (CAP_SYS_PTRACE)", m.Hidden))
	}
	for ino, n := range byInode {
		ps := procs[ino]
		slices.SortFunc(ps, func(a, b Process) int { return a.PID - b.PID })
		n.NumProcesses = len(ps)
		n.Processes = ps[:min(len(ps), MaxProcesses)]
		if n.Processes == nil {
			n.Processes = []Process{}
		}
		for _, p := range ps {
			n.pids = append(n.pids, p.PID)
			addContainer(n, p.Cgroup)
		}
		slices.Sort(n.Mounts)
		m.Namespaces = append(m.Namespaces, n)
	}
	slices.SortFunc(m.Namespaces, func(a, b *Namespace) int {
		if a.Host != b.Host {
			if a.Host {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Inode, b.Inode)
	})
	return m, nil
}

// addContainer records the container and pod a process's cgroup names.
func addContainer(n *Namespace, cg Cgroup) {
	if cg.ContainerID != "" && !slices.ContainsFunc(n.Containers, func(c Container) bool { return c.ID == cg.ContainerID }) {
		n.Containers = append(n.Containers, Container{ID: cg.ContainerID, Runtime: cg.Runtime, PodUID: cg.PodUID})
	}
	if cg.PodUID != "" && !slices.ContainsFunc(n.Pods, func(p Pod) bool { return p.UID == cg.PodUID }) {
		n.Pods = append(n.Pods, Pod{UID: cg.PodUID})
	}
}

var errKernelThread = errors.New("kernel thread")

// pfKthread is PF_KTHREAD of include/linux/sched.h: the process is a
// kernel thread, in init's namespace and of no interest to a user.
const pfKthread = 0x00200000

// readProcess reads what Discover keeps of one process. A process that
// exits between two reads gives fs.ErrNotExist (or ESRCH, mapped to it).
func readProcess(fsys FS, pid int) (Process, uint64, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	link, err := fsys.Readlink(dir + "/ns/net")
	if err != nil {
		return Process{}, 0, vanished(err)
	}
	ino, ok := nsInode(link, "net")
	if !ok {
		return Process{}, 0, fmt.Errorf("%s/ns/net: unexpected link %q", dir, link)
	}
	stat, err := fsys.ReadFile(dir + "/stat")
	if err != nil {
		return Process{}, 0, vanished(err)
	}
	comm, flags, err := parseStat(stat)
	if err != nil {
		return Process{}, 0, fmt.Errorf("%s/stat: %w", dir, err)
	}
	if flags&pfKthread != 0 {
		return Process{}, ino, errKernelThread
	}
	b, err := fsys.ReadFile(dir + "/cgroup")
	if err != nil {
		return Process{}, 0, vanished(err)
	}
	cg, err := parseProcCgroup(b)
	if err != nil {
		return Process{}, 0, fmt.Errorf("%s/cgroup: %w", dir, err)
	}
	return Process{PID: pid, Comm: comm, Cgroup: cg}, ino, nil
}

// vanished maps the errors of a process that exited mid-read (ESRCH from a
// readlink, an empty read) to fs.ErrNotExist.
func vanished(err error) error {
	if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "no such process") {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}

// parseStat reads the command name and the flags of /proc/PID/stat
// (proc_pid_stat(5)): the name is between the first "(" and the last ")",
// as it may hold both; flags is the ninth field.
func parseStat(b []byte) (string, uint64, error) {
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return "", 0, fmt.Errorf("no command name in %q", s)
	}
	f := strings.Fields(s[close+1:])
	if len(f) < 7 {
		return "", 0, fmt.Errorf("%d fields after the command name, want 7 or more", len(f))
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("flags %q: %w", f[6], err)
	}
	return s[open+1 : close], flags, nil
}

func shortID(id string) string { return id[:min(len(id), 12)] }

// MayOwn reports whether Discover could name a pod or a container for the
// network namespace ino: a CRI socket of opts exists (its runtime may place
// a pod there), or a process in ino has a container's or a pod's cgroup.
// When it reports false, the Namespace Discover makes for ino has no Pods
// and no Containers, so a caller that labels a namespace only by what runs
// in it can skip the walk: MayOwn reads the /proc/PID/ns/net links and
// only ino's processes' cgroups (a summary of a namespace without workloads
// spent 5 ms and 0.5 MB of heap on the whole walk for a label it dropped).
func MayOwn(opts Options, ino uint64) bool {
	fsys := opts.FS
	if fsys == nil {
		fsys = DirFS("/")
	}
	sockets := opts.CRISockets
	if sockets == nil {
		sockets = DefaultCRISockets
	}
	for _, sock := range sockets {
		if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
			return true // a runtime, or a socket Discover will report on
		}
	}
	ents, err := fsys.ReadDir("/proc")
	if err != nil {
		return true // Discover says why
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := "/proc/" + e.Name()
		link, err := fsys.Readlink(dir + "/ns/net")
		if err != nil {
			continue // exited, or hidden: Discover leaves it out too
		}
		n, ok := nsInode(link, "net")
		if !ok {
			return true
		}
		if n != ino {
			continue
		}
		b, err := fsys.ReadFile(dir + "/cgroup")
		if err != nil {
			continue
		}
		if cg, err := parseProcCgroup(b); err == nil && (cg.ContainerID != "" || cg.PodUID != "") {
			return true
		}
	}
	return false
}
