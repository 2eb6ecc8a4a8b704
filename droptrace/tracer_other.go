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
