package droptrace

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// KernelReasons reads the running kernel's drop reasons without starting a
// tracer: from its BTF (enum skb_drop_reason and the subsystem enums of
// loaded modules), else from the __print_symbolic table of the kfree_skb
// format file under tracefs ("" is the default mount). It needs no BPF
// privilege where /sys/kernel/btf/vmlinux is readable.
func KernelReasons(tracefs string) (*Reasons, error) {
	kspec, btfErr := btf.LoadKernelSpec()
	if btfErr == nil {
		r, err := kernelReasons(kspec)
		if err == nil {
			return r, nil
		}
		btfErr = err
	}
	f, ferr := readKfreeSkbFormat(tracefs)
	if ferr != nil {
		return nil, fmt.Errorf("%w: no reasons in kernel BTF (%w) nor a tracefs format for skb:kfree_skb (%w)", ErrNoReasons, btfErr, ferr)
	}
	r, err := ReasonsFromFormat(f)
	if err != nil {
		return nil, errors.Join(err, btfErr)
	}
	return r, nil
}
