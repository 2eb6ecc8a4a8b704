//go:build !linux

package sockets

import (
	"context"
	"fmt"
	"runtime"
)

// Conn is a sock_diag connection; sock_diag exists only on Linux.
type Conn struct{}

// Dial fails: sock_diag is Linux-only.
func Dial() (*Conn, error) {
	return nil, fmt.Errorf("sock_diag on %s: %w", runtime.GOOS, ErrNotSupported)
}

// Close does nothing.
func (c *Conn) Close() error { return nil }

// Dump fails: sock_diag is Linux-only.
func (c *Conn) Dump(ctx context.Context, family, proto uint8, states StateSet, fn func(*Socket) error) error {
	return fmt.Errorf("sock_diag on %s: %w", runtime.GOOS, ErrNotSupported)
}
