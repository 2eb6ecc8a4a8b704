//go:build linux

package droptrace

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// batchEntries is how many entries one BPF_MAP_LOOKUP_BATCH call asks for.
// A snapshot of a few hundred rows is then one or two system calls, where
// iterating costs two per entry (next key, lookup); the buffers stay small
// (a flow key is 72 bytes) because a snapshot is taken every interval.
const batchEntries = 512

// readMap calls fn for every entry of m, read in batches. For a per-CPU
// map vals holds one value per possible CPU, else one. key and vals are
// reused between calls: fn copies what it keeps. Kernels without the batch
// API (before 5.6) are read entry by entry.
func readMap[K any](m *ebpf.Map, fn func(key *K, vals []uint64)) error {
	per := 1
	switch m.Type() {
	case ebpf.PerCPUHash, ebpf.PerCPUArray, ebpf.LRUCPUHash:
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return err
		}
		per = n
	}
	size := batchEntries
	keys := make([]K, size)
	vals := make([]uint64, size*per)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			return iterateMap(m, per, fn)
		}
		// A hash map answers ENOSPC, before moving the cursor, when one
		// of its buckets holds more entries than the batch.
		if errors.Is(err, unix.ENOSPC) && size < int(m.MaxEntries()) {
			size *= 4
			keys = make([]K, size)
			vals = make([]uint64, size*per)
			continue
		}
		for i := range n {
			fn(&keys[i], vals[i*per:(i+1)*per])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end, after the last (possibly partial) batch
		}
		if err != nil {
			return err
		}
	}
}

// iterateMap is readMap one entry at a time.
func iterateMap[K any](m *ebpf.Map, per int, fn func(key *K, vals []uint64)) error {
	var key K
	it := m.Iterate()
	if per == 1 {
		var v uint64
		for it.Next(&key, &v) {
			fn(&key, []uint64{v})
		}
	} else {
		var vals []uint64
		for it.Next(&key, &vals) {
			fn(&key, vals)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterating map: %w", err)
	}
	return nil
}
