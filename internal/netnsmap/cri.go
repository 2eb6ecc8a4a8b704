package netnsmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criView is what one runtime said: its ready pod sandboxes and its
// containers.
type criView struct {
	endpoint   string
	sandboxes  map[string]*cri.PodSandbox // by sandbox ID
	byUID      map[string]*cri.PodSandbox
	containers map[string]*cri.Container // by container ID
}

// askCRI lists a runtime's ready pod sandboxes and its containers over
// the CRI API (k8s.io/cri-api RuntimeService) on a unix socket.
func askCRI(ctx context.Context, sock string, timeout time.Duration) (*criView, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("cri %s: %w", sock, err)
	}
	rt := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pods, err := rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{
		Filter: &cri.PodSandboxFilter{State: &cri.PodSandboxStateValue{State: cri.PodSandboxState_SANDBOX_READY}},
	})
	if err != nil {
		conn.Close()
		return nil, nil, criError(sock, "ListPodSandbox", err)
	}
	ctrs, err := rt.ListContainers(ctx, &cri.ListContainersRequest{})
	if err != nil {
		conn.Close()
		return nil, nil, criError(sock, "ListContainers", err)
	}
	v := &criView{endpoint: sock, sandboxes: map[string]*cri.PodSandbox{}, byUID: map[string]*cri.PodSandbox{}, containers: map[string]*cri.Container{}}
	for _, p := range pods.GetItems() {
		v.sandboxes[p.GetId()] = p
		if uid := p.GetMetadata().GetUid(); uid != "" {
			v.byUID[uid] = p
		}
	}
	for _, c := range ctrs.GetContainers() {
		v.containers[c.GetId()] = c
	}
	return v, conn, nil
}

// criError says which question failed and, for the usual causes, why.
func criError(sock, method string, err error) error {
	switch status.Code(err) {
	case codes.Unavailable:
		if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
			return fmt.Errorf("cri %s: %s: the socket needs root: %w", sock, method, os.ErrPermission)
		}
		return fmt.Errorf("cri %s: %s: runtime not answering: %w", sock, method, err)
	case codes.Unimplemented:
		return fmt.Errorf("cri %s: %s: the runtime does not serve the CRI v1 API (containerd's cri plugin disabled?): %w", sock, method, err)
	case codes.DeadlineExceeded:
		return fmt.Errorf("cri %s: %s: no answer in time: %w", sock, method, err)
	}
	return fmt.Errorf("cri %s: %s: %w", sock, method, err)
}

// addPods names the pods and containers of m from the runtime at sock. A
// socket that does not exist is not an error: that runtime is not here.
func addPods(ctx context.Context, m *Map, fsys FS, sock string, timeout time.Duration) error {
	if _, err := os.Stat(sock); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cri %s: %w", sock, err)
	}
	v, conn, err := askCRI(ctx, sock, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	placed := map[string]bool{} // sandbox IDs whose namespace is known
	for _, n := range m.Namespaces {
		for i := range n.Containers {
			c := &n.Containers[i]
			if ct, ok := v.containers[c.ID]; ok {
				c.Name = ct.GetMetadata().GetName()
				if sb, ok := v.sandboxes[ct.GetPodSandboxId()]; ok {
					c.PodUID = sb.GetMetadata().GetUid()
				}
			} else if sb, ok := v.sandboxes[c.ID]; ok {
				// The sandbox's own (pause) process.
				c.PodUID = sb.GetMetadata().GetUid()
			} else {
				continue
			}
			if c.Runtime == RuntimeNone {
				c.Runtime = endpointRuntime(sock)
			}
			if c.PodUID != "" && !slices.ContainsFunc(n.Pods, func(p Pod) bool { return p.UID == c.PodUID }) {
				n.Pods = append(n.Pods, Pod{UID: c.PodUID})
			}
		}
		for i := range n.Pods {
			if sb, ok := v.byUID[n.Pods[i].UID]; ok {
				n.Pods[i] = podOf(sb, sock)
				placed[sb.GetId()] = true
			}
		}
	}
	// Pods no process led to (a runtime without per-container cgroups, a
	// pod whose processes are hidden): the sandbox's verbose status
	// names its network namespace.
	rt := cri.NewRuntimeServiceClient(conn)
	var errs []error
	for id, sb := range v.sandboxes {
		if placed[id] {
			continue
		}
		ino, err := sandboxNetns(ctx, rt, m, fsys, id, timeout)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ino == 0 {
			continue // host network, or the runtime does not say
		}
		n, ok := m.Lookup(ino)
		if !ok {
			n = &Namespace{Inode: ino, Processes: []Process{}}
			m.Namespaces = append(m.Namespaces, n)
		}
		if !slices.ContainsFunc(n.Pods, func(p Pod) bool { return p.UID == sb.GetMetadata().GetUid() }) {
			n.Pods = append(n.Pods, podOf(sb, sock))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cri %s: %d pod sandboxes not placed: %w", sock, len(errs), errs[0])
	}
	return nil
}

func podOf(sb *cri.PodSandbox, sock string) Pod {
	md := sb.GetMetadata()
	return Pod{Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid(), SandboxID: sb.GetId(), Runtime: sock}
}

// sandboxInfo is the part of a sandbox's verbose status (its "info" entry,
// JSON) that names its network namespace: containerd writes the path and
// the sandbox's pid, both write the OCI runtime spec.
type sandboxInfo struct {
	Pid              int    `json:"pid"`
	NetNamespacePath string `json:"netNamespacePath"`
	RuntimeSpec      struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

// sandboxNetns finds the inode of a sandbox's network namespace from its
// verbose status; 0 when the status names none (a host-network pod).
func sandboxNetns(ctx context.Context, rt cri.RuntimeServiceClient, m *Map, fsys FS, id string, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := rt.PodSandboxStatus(ctx, &cri.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return 0, fmt.Errorf("PodSandboxStatus %s: %w", shortID(id), err)
	}
	raw, ok := st.GetInfo()["info"]
	if !ok {
		return 0, nil
	}
	var info sandboxInfo
	if err := json.Unmarshal([]byte(raw), &info); err != nil {
		return 0, fmt.Errorf("PodSandboxStatus %s: info: %w", shortID(id), err)
	}
	paths := []string{info.NetNamespacePath}
	for _, ns := range info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			paths = append(paths, ns.Path)
		}
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		for _, n := range m.Namespaces {
			if slices.Contains(n.Mounts, p) {
				return n.Inode, nil
			}
		}
		if l, err := fsys.Readlink(p); err == nil {
			if ino, ok := nsInode(l, "net"); ok {
				return ino, nil
			}
		}
	}
	if info.Pid > 0 {
		l, err := fsys.Readlink("/proc/" + strconv.Itoa(info.Pid) + "/ns/net")
		if err != nil {
			return 0, fmt.Errorf("sandbox %s: pid %d: %w", shortID(id), info.Pid, err)
		}
		if ino, ok := nsInode(l, "net"); ok {
			return ino, nil
		}
	}
	return 0, nil
}

// endpointRuntime names the runtime behind a socket by its usual path.
func endpointRuntime(sock string) Runtime {
	switch {
	case strings.Contains(sock, "containerd"):
		return RuntimeContainerd
	case strings.Contains(sock, "crio"):
		return RuntimeCRIO
	}
	return RuntimeNone
}
