package counters

import (
	"context"
	"testing"

	"github.com/netdrop/netdrop/internal/netns"
)

// BenchmarkCollectAll reads every registered source once per iteration the
// way diagnose.Snapshot does: in parallel, each worker on a locked thread
// inside the namespace (here the current one). It is the number to profile
// when a snapshot gets slower:
//
//	go test -run '^$' -bench CollectAll -cpuprofile cpu.out ./counters/
func BenchmarkCollectAll(b *testing.B) {
	ctx := context.Background()
	opts := Options{Enter: func(fn func() error) error { return netns.Do("", fn) }}
	b.ReportAllocs()
	for b.Loop() {
		s := Collect(ctx, opts)
		if len(s.Counters) == 0 {
			b.Fatal("nothing read")
		}
	}
}

// BenchmarkCollectEach times each registered source alone, in turn on the
// calling goroutine, to show which one a snapshot waits for.
func BenchmarkCollectEach(b *testing.B) {
	ctx := context.Background()
	fs := DefaultFS()
	for _, src := range DefaultSources() {
		b.Run(src.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := &Snapshot{Sysctls: map[string]string{}}
				if err := src.Collect(ctx, fs, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
