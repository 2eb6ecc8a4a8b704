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
)

// criView is what one runtime said: its ready pod sandboxes and its
// containers.
type criView struct {
	endpoint   string
	sandboxes  map[string]*criSandbox // by sandbox ID
	byUID      map[string]*criSandbox
	containers map[string]*criContainer // by container ID
}

// askCRI lists a runtime's ready pod sandboxes and its containers over
// the CRI API (RuntimeService) on a unix socket.
func askCRI(ctx context.Context, sock string, timeout time.Duration) (*criView, *criClient, error) {
	rt := newCRIClient(sock)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pods, err := rt.listPodSandbox(ctx)
	if err != nil {
		rt.close()
		return nil, nil, criError(sock, "ListPodSandbox", err)
	}
	ctrs, err := rt.listContainers(ctx)
	if err != nil {
		rt.close()
		return nil, nil, criError(sock, "ListContainers", err)
	}
	v := &criView{endpoint: sock, sandboxes: map[string]*criSandbox{}, byUID: map[string]*criSandbox{}, containers: map[string]*criContainer{}}
	for _, p := range pods {
		v.sandboxes[p.id] = p
		if p.uid != "" {
			v.byUID[p.uid] = p
		}
	}
	for _, c := range ctrs {
		v.containers[c.id] = c
	}
	return v, rt, nil
}

// criError says which question failed and, for the usual causes, why.
func criError(sock, method string, err error) error {
	switch rpcCode(err) {
	case codeUnavailable:
		if errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
			return fmt.Errorf("cri %s: %s: the socket needs root: %w", sock, method, os.ErrPermission)
		}
		return fmt.Errorf("cri %s: %s: runtime not answering: %w", sock, method, err)
	case codeUnimplemented:
		return fmt.Errorf("cri %s: %s: the runtime does not serve the CRI v1 API (containerd's cri plugin disabled?): %w", sock, method, err)
	case codeDeadlineExceeded:
		return fmt.Errorf("cri %s: %s: no answer in time: %w", sock, method, err)
	}
	return fmt.Errorf("cri %s: %s: %w", sock, method, err)
}

// addPods names the pods and containers of m from the runtime at sock. A
// socket that does not exist is not an error: that runtime is not here.
func addPods(ctx context.Context, m *Map, fsys FS, sock string, timeout time.Duration, cache *Cache) error {
	if _, err := os.Stat(sock); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("cri %s: %w", sock, err)
	}
	v, rt, err := askCRI(ctx, sock, timeout)
	if err != nil {
		return err
	}
	defer rt.close()
	placed := map[string]bool{} // sandbox IDs whose namespace is known
	for _, n := range m.Namespaces {
		for i := range n.Containers {
			c := &n.Containers[i]
			if ct, ok := v.containers[c.ID]; ok {
				c.Name = ct.name
				if sb, ok := v.sandboxes[ct.sandboxID]; ok {
					c.PodUID = sb.uid
				}
			} else if sb, ok := v.sandboxes[c.ID]; ok {
				// The sandbox's own (pause) process.
				c.PodUID = sb.uid
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
				placed[sb.id] = true
			}
		}
	}
	// Pods no process led to (a runtime without per-container cgroups, a
	// pod whose processes are hidden): the sandbox's verbose status
	// names its network namespace.
	var errs []error
	cache.forget(sock, func(id string) bool { _, ok := v.sandboxes[id]; return ok })
	for id, sb := range v.sandboxes {
		if placed[id] {
			continue
		}
		key := sandboxKey{sock, id}
		ino, ok := cache.lookup(key)
		if !ok {
			var err error
			if ino, err = sandboxNetns(ctx, rt, m, fsys, id, timeout); err != nil {
				errs = append(errs, err)
				continue
			}
			if ino != 0 {
				// A namespace found is the sandbox's for its
				// life; none found (host network, or a status
				// not complete yet) is asked again next time.
				cache.store(key, ino)
			}
		}
		if ino == 0 {
			continue // host network, or the runtime does not say
		}
		n, ok := m.Lookup(ino)
		if !ok {
			n = &Namespace{Inode: ino, Processes: []Process{}}
			m.Namespaces = append(m.Namespaces, n)
		}
		if !slices.ContainsFunc(n.Pods, func(p Pod) bool { return p.UID == sb.uid }) {
			n.Pods = append(n.Pods, podOf(sb, sock))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cri %s: %d pod sandboxes not placed: %w", sock, len(errs), errs[0])
	}
	return nil
}

func podOf(sb *criSandbox, sock string) Pod {
	return Pod{Namespace: sb.namespace, Name: sb.name, UID: sb.uid, SandboxID: sb.id, Runtime: sock}
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
func sandboxNetns(ctx context.Context, rt *criClient, m *Map, fsys FS, id string, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, ok, err := rt.sandboxInfo(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("PodSandboxStatus %s: %w", shortID(id), err)
	}
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
