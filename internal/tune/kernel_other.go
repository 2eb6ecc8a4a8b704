//go:build !linux

package tune

import (
	"fmt"
	"runtime"
)

// Kernel reads and writes kernel settings; only Linux has them.
type Kernel struct {
	Netns     string
	Proc, Sys string
}

func (Kernel) Read(s Setting) (string, error)  { return "", errOS() }
func (Kernel) Check(s Setting) error           { return errOS() }
func (Kernel) Write(s Setting, v string) error { return errOS() }

func errOS() error { return fmt.Errorf("%w: kernel settings on %s", ErrNotSupported, runtime.GOOS) }
