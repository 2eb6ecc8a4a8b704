package tune

import (
	"testing"

	"github.com/netdrop/netdrop/diagnose"
)

// TestEveryKindHasAnApplier checks that each kind of change diagnose can
// propose has both halves of its applier: what tune knows of it (kinds)
// and how the kernel reads and writes it (kernelAppliers).
func TestEveryKindHasAnApplier(t *testing.T) {
	all := diagnose.ChangeKinds()
	if len(all) == 0 {
		t.Fatal("diagnose lists no change kinds")
	}
	for _, k := range all {
		if r, ok := kinds[k]; !ok || r.risk == nil {
			t.Errorf("kind %s has no row with a risk in kinds (kinds.go)", k)
		}
		if a, ok := kernelAppliers[k]; !ok || a.read == nil || a.check == nil || a.write == nil {
			t.Errorf("kind %s has no complete kernelApplier (kernel_linux.go)", k)
		}
	}
	if len(kinds) != len(all) || len(kernelAppliers) != len(all) {
		t.Errorf("%d kinds, %d kernel appliers for %d change kinds", len(kinds), len(kernelAppliers), len(all))
	}
}
