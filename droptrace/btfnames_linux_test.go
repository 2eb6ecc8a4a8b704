//go:build linux

package droptrace

import (
	"testing"

	"github.com/cilium/ebpf/btf"
	"github.com/google/go-cmp/cmp"
)

// TestKernelReasonsByNameMatchWalk reads the running kernel's reasons both
// ways, finding the subsystem enums by name and decoding every type, and
// wants the same table.
func TestKernelReasonsByNameMatchWalk(t *testing.T) {
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	byName, err := kernelReasonsByName(kspec)
	if err != nil {
		t.Skipf("kernel without drop reasons: %v", err)
	}
	mods := subsysModuleSpecs(kspec)
	var specs []*btf.Spec
	for _, s := range mods {
		specs = append(specs, s)
	}
	walked, err := ReasonsFromBTF(kspec, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(walked.names, byName.names); diff != "" {
		t.Errorf("reasons (-walked +by name):\n%s", diff)
	}
	if diff := cmp.Diff(walked.subsys, byName.subsys); diff != "" {
		t.Errorf("subsystems (-walked +by name):\n%s", diff)
	}
	t.Logf("%d reasons, %d subsystems, %d module BTFs", byName.Len(), len(byName.subsys), len(mods))
}
