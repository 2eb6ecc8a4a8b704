//go:build !linux

package droptrace

import (
	"fmt"
	"runtime"
)

// KernelReasons fails: drop reasons are a Linux kernel's.
func KernelReasons(string) (*Reasons, error) {
	return nil, fmt.Errorf("%w on %s", ErrNotSupported, runtime.GOOS)
}
