//go:build !linux

package tune

import (
	"fmt"
	"runtime"

	"github.com/netdrop/netdrop/internal/netns"
)

// Kernel reads and writes kernel settings; only Linux has them.
type Kernel struct {
	Netns     netns.Target
	Proc, Sys string
}

func (Kernel) Read(s Setting) (string, error)  { return "", errOS() }
func (Kernel) Check(s Setting) error           { return errOS() }
func (Kernel) Write(s Setting, v string) error { return errOS() }

func errOS() error { return fmt.Errorf("%w: kernel settings on %s", ErrNotSupported, runtime.GOOS) }
