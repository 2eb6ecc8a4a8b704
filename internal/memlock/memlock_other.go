//go:build !linux

package memlock

// Raise does nothing where netdrop loads no eBPF.
func Raise() error { return nil }
