package counters

import (
	"context"
	"time"

	"github.com/netdrop/netdrop/internal/netns"
)

// Target is the network namespace a snapshot is taken in: the current one
// (the zero value), a name under /run/netns, a namespace file, or a
// process's namespace.
type Target = netns.Target

// ParseTarget reads a target as users type it: "" for the current
// namespace, pid:N, a path (anything with a slash) or a name under
// /run/netns.
func ParseTarget(spec string) (Target, error) { return netns.Parse(spec) }

// Namespace targets, for callers that know which kind they have.
var (
	CurrentNetns = netns.Current
	NamedNetns   = netns.Named
	NetnsAtPath  = netns.AtPath
	NetnsOfPID   = netns.OfPID
)

// IsCurrentNetns reports whether a snapshot's Netns label names the
// namespace of the reader itself (or is empty, as in a snapshot built by
// hand).
func IsCurrentNetns(label string) bool {
	return label == "" || label == netns.Current().String()
}

// CollectIn takes one snapshot of the namespace t: what diagnose, the
// exporter, probe, `netdrop counters` and the lab all read, so their
// numbers agree. Sources are read in parallel, each worker inside t.
//
// For a namespace other than the caller's own, what the kernel keeps only
// in the initial namespace is read from the caller's: the global sysctls
// (net.core.netdev_max_backlog, nf_conntrack_max, …) fill the settings t
// lacks, and the neighbour tables' statistics, which are one per host,
// are added marked HostWide. The caller is expected to be in the initial
// namespace, as netdrop is.
//
// The host values are added only with the default sources: a caller that
// chose its sources gets those.
//
// It fails only when t cannot be entered; a source that cannot be read is
// an Unavailable entry as with Collect. opts.Netns and opts.Enter are set
// from t.
func CollectIn(ctx context.Context, t Target, opts Options) (*Snapshot, error) {
	// Enter once to fail early and clearly on a bad namespace.
	if err := t.Do(func() error { return nil }); err != nil {
		return nil, err
	}
	opts.Netns = t.String()
	opts.Enter = t.Do
	if opts.FS == (FS{}) {
		opts.FS = DefaultFS()
	}
	snap := Collect(ctx, opts)
	if !t.IsCurrent() && opts.Sources == nil {
		mergeHost(ctx, opts.FS, snap)
	}
	return snap, nil
}

// Unreadable is the snapshot of t when CollectIn could not enter it (the
// namespace went away): every default source unavailable for err.
func Unreadable(t Target, err error) *Snapshot {
	s := &Snapshot{Time: time.Now(), Netns: t.String()}
	for _, src := range registry {
		s.Fail(src.ID(), err)
	}
	return s
}

// mergeHost adds to snap, a namespace's snapshot, the host-wide values
// only the caller's (initial) namespace shows.
func mergeHost(ctx context.Context, fs FS, snap *Snapshot) {
	r := NewReading(fs)
	host := &Snapshot{Sysctls: map[string]string{}}
	if err := (SysctlSource{}).Collect(ctx, r, host); err == nil {
		if snap.Sysctls == nil {
			snap.Sysctls = map[string]string{}
		}
		for k, v := range host.Sysctls {
			if _, ok := snap.Sysctls[k]; !ok {
				snap.Sysctls[k] = v
			}
		}
	}
	neigh := NeighSource{}
	host = &Snapshot{}
	if err := neigh.Collect(ctx, r, host); err != nil || len(host.Counters) == 0 {
		return
	}
	for i := range host.Counters {
		host.Counters[i].HostWide = true
	}
	snap.Add(host.Counters...)
	// The namespace's own reading found no neighbour statistics and said
	// so; they are here now.
	kept := snap.Unavailable[:0]
	for _, u := range snap.Unavailable {
		if u.Source != ProcNetStatARPCache && u.Source != ProcNetStatNDiscCache {
			kept = append(kept, u)
		}
	}
	snap.Unavailable = kept
}
