package netnsmap

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Runtime is the container runtime a cgroup path belongs to, named as the
// runtime names itself.
type Runtime string

// The runtimes whose cgroup layouts ParseCgroup knows.
const (
	RuntimeNone       Runtime = ""
	RuntimeDocker     Runtime = "docker"
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimePodman     Runtime = "podman"
)

// QoS is a Kubernetes pod's quality-of-service class as the kubelet spells
// it in cgroup names.
type QoS string

// The kubelet's classes; a guaranteed pod's slice sits directly under
// kubepods, so it has no word of its own in the path.
const (
	QoSGuaranteed QoS = "guaranteed"
	QoSBurstable  QoS = "burstable"
	QoSBestEffort QoS = "besteffort"
)

// Cgroup is what a process's cgroup path says about it: the container it
// runs in and, under the kubelet's hierarchy, the pod. Fields are empty when
// the path does not say.
type Cgroup struct {
	// Path is the cgroup v2 path (the "0::" line), or the first v1 path
	// that names a container on a host without a unified hierarchy.
	Path        string  `json:"path"`
	Runtime     Runtime `json:"runtime,omitempty"`
	ContainerID string  `json:"container_id,omitempty"`
	// PodUID is the Kubernetes pod's UID (with dashes, as the API shows
	// it), from a kubepods…pod<uid> segment.
	PodUID string `json:"pod_uid,omitempty"`
	QoS    QoS    `json:"qos,omitempty"`
}

// InContainer reports whether the path names a container or a pod.
func (c Cgroup) InContainer() bool { return c.ContainerID != "" || c.PodUID != "" }

// parseProcCgroup reads /proc/PID/cgroup: "0::PATH" on cgroup v2, one
// "ID:CONTROLLERS:PATH" line per v1 hierarchy on older hosts. The v2 line
// wins when it names a container; on a hybrid host whose unified hierarchy
// is unused (every process at "/"), the first v1 path that names one does.
func parseProcCgroup(b []byte) (Cgroup, error) {
	var v2 *Cgroup
	var first *Cgroup
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		n++
		id, rest, ok := strings.Cut(line, ":")
		if !ok {
			return Cgroup{}, fmt.Errorf("cgroup line %q: no hierarchy id", line)
		}
		_, path, ok := strings.Cut(rest, ":")
		if !ok || !strings.HasPrefix(path, "/") {
			return Cgroup{}, fmt.Errorf("cgroup line %q: no path", line)
		}
		c := ParseCgroup(path)
		if id == "0" {
			v2 = &c
			if c.InContainer() {
				return c, nil
			}
			continue
		}
		if first == nil && c.InContainer() {
			first = &c
		}
	}
	if err := sc.Err(); err != nil {
		return Cgroup{}, err
	}
	switch {
	case first != nil:
		return *first, nil
	case v2 != nil:
		return *v2, nil
	case n == 0:
		return Cgroup{}, fmt.Errorf("cgroup file is empty")
	}
	return Cgroup{Path: "/"}, nil
}

// ParseCgroup reads the container and pod out of a cgroup path. Each
// segment is matched against the layouts runtimes and the kubelet create,
// with the systemd cgroup driver (docker-ID.scope, cri-containerd-ID.scope,
// crio-ID.scope, libpod-ID.scope, kubepods-burstable-podUID.slice) and
// the cgroupfs driver (/docker/ID, /kubepods/burstable/podUID/ID). An ID must
// be 64 hexadecimal digits, so a unit that merely starts with a runtime's
// name (docker.service, crio-conmon-ID.scope) names no container. The
// innermost container segment wins: a runtime nested in a container (kind,
// Docker-in-Docker) names its own containers below the outer one. Under the
// cgroupfs driver a pod's containers carry no runtime's name (Runtime is
// empty; CRI says which runtime it is).
func ParseCgroup(path string) Cgroup {
	c := Cgroup{Path: path}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, seg := range segs {
		if seg == "" {
			continue
		}
		if uid, qos, ok := podSegment(seg, segs[:i]); ok {
			c.PodUID, c.QoS = uid, qos
			continue
		}
		if rt, id, ok := containerSegment(seg, segs[:i]); ok {
			c.Runtime, c.ContainerID = rt, id
		}
	}
	return c
}

// scopePrefixes are the systemd-driver unit names of each runtime's
// containers: PREFIX-ID.scope.
var scopePrefixes = []struct {
	prefix  string
	runtime Runtime
}{
	{"docker-", RuntimeDocker},
	{"cri-containerd-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"libpod-", RuntimePodman},
}

// containerSegment matches one path segment that names a container.
func containerSegment(seg string, parents []string) (Runtime, string, bool) {
	if name, ok := strings.CutSuffix(seg, ".scope"); ok {
		for _, p := range scopePrefixes {
			if id, ok := strings.CutPrefix(name, p.prefix); ok && isContainerID(id) {
				return p.runtime, id, true
			}
		}
		return RuntimeNone, "", false
	}
	if !isContainerID(seg) || len(parents) == 0 {
		return RuntimeNone, "", false
	}
	// cgroupfs driver: the ID is a directory of its own under the
	// runtime's or the pod's directory.
	parent := parents[len(parents)-1]
	switch {
	case parent == "docker":
		return RuntimeDocker, seg, true
	case parent == "libpod_parent" || strings.HasPrefix(parent, "libpod-"):
		return RuntimePodman, seg, true
	case strings.HasPrefix(parent, "pod"):
		if _, _, ok := podSegment(parent, parents[:len(parents)-1]); ok {
			return RuntimeNone, seg, true
		}
	}
	return RuntimeNone, "", false
}

// podSegment matches the kubelet's pod cgroup: under the systemd driver
// kubepods[-QOS]-pod<UID with underscores>.slice, under cgroupfs a
// directory pod<UID> below kubepods[/QOS].
func podSegment(seg string, parents []string) (string, QoS, bool) {
	if name, ok := strings.CutSuffix(seg, ".slice"); ok {
		rest, ok := strings.CutPrefix(name, "kubepods-")
		if !ok {
			return "", "", false
		}
		qos := QoSGuaranteed
		for _, q := range []QoS{QoSBurstable, QoSBestEffort} {
			if r, ok := strings.CutPrefix(rest, string(q)+"-"); ok {
				qos, rest = q, r
				break
			}
		}
		uid, ok := strings.CutPrefix(rest, "pod")
		if !ok {
			return "", "", false
		}
		// systemd escapes "-" in unit names, so the kubelet writes the
		// UID's dashes as underscores.
		uid = strings.ReplaceAll(uid, "_", "-")
		if !isUID(uid) {
			return "", "", false
		}
		return uid, qos, true
	}
	uid, ok := strings.CutPrefix(seg, "pod")
	if !ok || !isUID(uid) || len(parents) == 0 {
		return "", "", false
	}
	qos := QoSGuaranteed
	switch parents[len(parents)-1] {
	case "kubepods":
	case string(QoSBurstable), string(QoSBestEffort):
		if len(parents) < 2 || parents[len(parents)-2] != "kubepods" {
			return "", "", false
		}
		qos = QoS(parents[len(parents)-1])
	default:
		return "", "", false
	}
	return uid, qos, true
}

// isContainerID reports whether s is a full container ID: 64 lowercase
// hexadecimal digits, as Docker, containerd, CRI-O and Podman make them.
func isContainerID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isUID reports whether s is a UUID in its 8-4-4-4-12 form, as Kubernetes
// gives pods.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
