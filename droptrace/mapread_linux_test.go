//go:build linux

package droptrace

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
)

// TestReadMapMatchesIteration reads maps of several batches' worth of
// entries, per-CPU and not, with the batch reader and with the kernel's
// one-entry-at-a-time iteration, and wants the same entries and values.
func TestReadMapMatchesIteration(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kernel test: creating BPF maps needs root")
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []ebpf.MapType{ebpf.Hash, ebpf.PerCPUHash, ebpf.PerCPUArray} {
		t.Run(typ.String(), func(t *testing.T) {
			const n = 3*batchEntries + 7
			m, err := ebpf.NewMap(&ebpf.MapSpec{Type: typ, KeySize: 4, ValueSize: 8, MaxEntries: n})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			per := 1
			if typ != ebpf.Hash {
				per = ncpu
			}
			for k := range uint32(n) {
				vals := make([]uint64, per)
				for c := range vals {
					vals[c] = uint64(k)*100 + uint64(c)
				}
				var v any = vals
				if per == 1 {
					v = vals[0]
				}
				if err := m.Put(k, v); err != nil {
					t.Fatal(err)
				}
			}
			read := func(f func(*ebpf.Map, func(*uint32, []uint64)) error) map[uint32][]uint64 {
				got := map[uint32][]uint64{}
				if err := f(m, func(k *uint32, v []uint64) { got[*k] = append([]uint64(nil), v...) }); err != nil {
					t.Fatal(err)
				}
				return got
			}
			batched := read(readMap[uint32])
			iterated := read(func(m *ebpf.Map, fn func(*uint32, []uint64)) error { return iterateMap(m, per, fn) })
			if len(batched) != n {
				t.Errorf("batch reader saw %d entries, want %d", len(batched), n)
			}
			if diff := cmp.Diff(iterated, batched); diff != "" {
				t.Errorf("batch reader differs from iteration (-iterated +batched):\n%s", diff)
			}
		})
	}
}
