package sockets

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Summarize reads every TCP and UDP socket of the namespace named by
// opts.Netns, IPv4 and IPv6, and returns the views: counts per family and
// state, TIME_WAIT by side, client sockets per destination against the
// ephemeral range, listeners and their accept queues, and the sockets that
// drop or are about to. The dump is streamed: memory grows with the number
// of destinations and with Top, not with the number of sockets.
func Summarize(ctx context.Context, opts Options) (*Summary, error) {
	procRoot := opts.ProcRoot
	if procRoot == "" {
		procRoot = "/proc"
	}
	states := opts.States
	if states == 0 {
		states = AllStates
	}

	// A --process filter needs the owners before the dump, to keep only
	// that process's sockets. Socket inodes are global, so this walk does
	// not need the namespace.
	var owners *OwnerScan
	if !opts.Process.IsZero() {
		var err error
		owners, err = ScanOwners(procRoot, opts.Process, nil)
		if err != nil {
			return nil, err
		}
	}
	keep := func(s *Socket) bool {
		if opts.Port != 0 && s.Local.Port() != opts.Port && s.Remote.Port() != opts.Port {
			return false
		}
		if owners != nil {
			if _, ok := owners.Owners[s.Inode]; !ok || s.Inode == 0 {
				return false
			}
		}
		return true
	}

	var agg *aggregator
	var unavailable []string
	err := opts.Netns.Do(func() error {
		settings, problems := ReadSettings(procRoot)
		unavailable = append(unavailable, problems...)
		agg = newAggregator(opts, settings, keep)

		c, err := Dial()
		if err != nil {
			return err
		}
		defer c.Close()
		// Listeners first, unfiltered: they decide which TIME_WAIT and
		// which connections are the server's.
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			err := c.Dump(ctx, fam, unix.IPPROTO_TCP, 1<<Listen, func(s *Socket) error {
				agg.noteListener(s)
				if states.Has(Listen) {
					agg.add(s)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		add := func(s *Socket) error {
			agg.add(s)
			return nil
		}
		// TCP of both families in one walk of the connection hash.
		if mask := states &^ (1 << Listen); mask != 0 { // listeners already read
			if err := c.DumpTCP(ctx, mask, add); err != nil {
				return err
			}
		}
		for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
			err := c.Dump(ctx, fam, unix.IPPROTO_UDP, states, add)
			if err == nil {
				continue
			}
			if errors.Is(err, ErrNotSupported) {
				unavailable = append(unavailable, err.Error())
				break
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sockets: %w", err)
	}
	sum := agg.summary()
	sum.Unavailable = append(sum.Unavailable, unavailable...)
	if opts.Owners {
		if err := resolveOwners(sum, procRoot, owners); err != nil {
			sum.Unavailable = append(sum.Unavailable, err.Error())
		}
	}
	return sum, nil
}

// resolveOwners names the processes of the listeners and pressured sockets
// kept in sum, with one walk of /proc (or the walk already made for a
// process filter).
func resolveOwners(sum *Summary, procRoot string, scan *OwnerScan) error {
	want := map[uint32]bool{}
	for _, l := range sum.Listeners {
		want[l.Inode] = true
	}
	for _, p := range sum.Pressure {
		want[p.Inode] = true
	}
	delete(want, 0)
	if len(want) == 0 {
		return nil
	}
	if scan == nil {
		var err error
		scan, err = ScanOwners(procRoot, ProcessFilter{}, func(ino uint32) bool { return want[ino] })
		if err != nil {
			return err
		}
	}
	for i := range sum.Listeners {
		sum.Listeners[i].Processes = scan.Owners[sum.Listeners[i].Inode]
	}
	for i := range sum.Pressure {
		sum.Pressure[i].Processes = scan.Owners[sum.Pressure[i].Inode]
	}
	if scan.Unreadable > 0 {
		return fmt.Errorf("process lookup: %d of %d processes could not be read (exited, or not root)", scan.Unreadable, scan.Processes)
	}
	return nil
}
