//go:build !linux

package droptrace

import (
	"context"
	"fmt"
	"runtime"
)

// Tracer is unavailable outside Linux.
type Tracer struct{}

// Start fails: drop tracing needs Linux eBPF.
func Start(context.Context, Options) (*Tracer, error) {
	return nil, fmt.Errorf("%w on %s", ErrNotSupported, runtime.GOOS)
}

// Snapshot is never reached.
func (*Tracer) Snapshot() (Snapshot, error) { return Snapshot{}, ErrNotSupported }

// Close does nothing.
func (*Tracer) Close() error { return nil }

// Info is empty.
func (*Tracer) Info() Info { return Info{} }

// Events is nil.
func (*Tracer) Events() <-chan Event { return nil }

// Reasons is nil.
func (*Tracer) Reasons() *Reasons { return nil }
