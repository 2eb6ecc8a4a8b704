package cli

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/spf13/pflag"
)

// maxOwnerNames bounds the containers and processes an Owner names: a
// label recognises a namespace; the full list is netnsmap's.
const maxOwnerNames = 3

// nsmapFlags are the flags of commands that find namespaces by pod or
// container: which CRI sockets to ask.
type nsmapFlags struct {
	criSockets []string
	pod        string
	container  string
}

func (f *nsmapFlags) add(fs *pflag.FlagSet, selectors bool) {
	fs.StringArrayVar(&f.criSockets, "cri-socket", netnsmap.DefaultCRISockets, "CRI runtime socket to ask for pods (repeatable; those absent are skipped)")
	if selectors {
		fs.StringVar(&f.pod, "pod", "", "the network namespace of Kubernetes pod NAMESPACE/NAME (or its UID), found through the node's CRI runtime")
		fs.StringVar(&f.container, "container", "", "the network namespace of a container: ID prefix (4+ digits) or its name in a pod")
	}
}

// discover maps the host's namespaces.
func (f *nsmapFlags) discover(ctx context.Context) (*netnsmap.Map, error) {
	return netnsmap.Discover(ctx, netnsmap.Options{CRISockets: f.criSockets})
}

// selected reports whether --pod or --container was given.
func (f *nsmapFlags) selected() bool { return f.pod != "" || f.container != "" }

// find returns the namespace --pod or --container names, and its owner.
func (f *nsmapFlags) find(ctx context.Context) (netns.Target, *diagnose.Owner, error) {
	m, err := f.discover(ctx)
	if err != nil {
		return netns.Target{}, nil, err
	}
	var n *netnsmap.Namespace
	if f.pod != "" {
		n, err = m.FindPod(f.pod)
	} else {
		n, err = m.FindContainer(f.container)
	}
	if err != nil {
		return netns.Target{}, nil, err
	}
	return n.Target(), ownerOf(n), nil
}

// labelOf is the owner of the namespace t when a pod or container runs in
// it, else nil: output about a namespace says whose it is where that is
// known, and stays as it was elsewhere. Mapping failures leave it nil; the
// label is a courtesy, not the command's answer.
func (f *nsmapFlags) labelOf(ctx context.Context, t netns.Target) *diagnose.Owner {
	ino, err := netns.ID(t.Spec())
	if err != nil {
		return nil
	}
	if !netnsmap.MayOwn(netnsmap.Options{CRISockets: f.criSockets}, ino) {
		return nil // no pod or container can be named: skip the walk
	}
	m, err := f.discover(ctx)
	if err != nil {
		return nil
	}
	n, ok := m.Lookup(ino)
	if !ok || (len(n.Pods) == 0 && len(n.Containers) == 0) {
		return nil
	}
	return ownerOf(n)
}

// ownerOf is a namespace's owner label: its pod when it has one, its
// containers (names from CRI, else short IDs; the pod's sandbox left out)
// and first processes, each list cut to a few.
func ownerOf(n *netnsmap.Namespace) *diagnose.Owner {
	o := &diagnose.Owner{Netns: n.Label(), Inode: n.Inode, ProcessCount: n.NumProcesses}
	pod, hasPod := n.Pod()
	if hasPod {
		o.PodNamespace, o.Pod = pod.Namespace, pod.Name
		if pod.Name == "" {
			o.Pod = "uid:" + pod.UID
		}
	}
	var names []string
	for _, c := range n.Containers {
		if hasPod && c.ID == pod.SandboxID {
			continue // the pause process holds the namespace; not a workload
		}
		names = append(names, cmp.Or(c.Name, c.Short()))
	}
	o.Containers = bounded(names)
	var procs []string
	for _, p := range n.Processes {
		procs = append(procs, fmt.Sprintf("%s[%d]", p.Comm, p.PID))
	}
	// The count says how many there are; the names are a sample.
	o.Processes = procs[:min(len(procs), maxOwnerNames)]
	return o
}

// bounded cuts a list to maxOwnerNames, the last entry saying how many
// more there were.
func bounded(s []string) []string {
	if len(s) <= maxOwnerNames {
		return s
	}
	return append(s[:maxOwnerNames:maxOwnerNames], fmt.Sprintf("+%d more", len(s)-maxOwnerNames))
}

// ownerLine is an owner in one line of text: "netns web · pod shop/web-0 ·
// containers nginx, sidecar · processes nginx[812], … (14)".
func ownerLine(o *diagnose.Owner) string {
	parts := []string{"netns " + o.Netns}
	if o.Pod != "" {
		p := o.Pod
		if o.PodNamespace != "" {
			p = o.PodNamespace + "/" + p
		}
		parts = append(parts, "pod "+p)
	}
	if len(o.Containers) > 0 {
		parts = append(parts, "containers "+strings.Join(o.Containers, ", "))
	}
	if o.ProcessCount > 0 {
		ps := strings.Join(o.Processes, ", ")
		if o.ProcessCount > len(o.Processes) {
			ps += fmt.Sprintf(", … (%d)", o.ProcessCount)
		}
		parts = append(parts, "processes "+ps)
	}
	return strings.Join(parts, " · ")
}
