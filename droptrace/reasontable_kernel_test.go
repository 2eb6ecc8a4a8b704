//go:build linux

package droptrace

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// TestKernelReasonsAllPlaced enumerates the running kernel's enum
// skb_drop_reason (BTF, else the tracefs format) and fails on any reason the
// table does not place itself: a new kernel's reason must be given a stage
// or a class here, not left to the name-prefix fallback.
func TestKernelReasonsAllPlaced(t *testing.T) {
	var rs *Reasons
	if spec, err := btf.LoadKernelSpec(); err == nil {
		if rs, err = ReasonsFromBTF(spec); err != nil {
			t.Fatalf("kernel BTF without enum skb_drop_reason: %v", err)
		}
	} else {
		f, ferr := readKfreeSkbFormat("")
		if ferr != nil {
			t.Skipf("no kernel BTF (%v) and no readable tracefs format (%v): needs BTF, or root with tracefs mounted", err, ferr)
		}
		if rs, err = ReasonsFromFormat(f); errors.Is(err, ErrNoReasons) {
			t.Skipf("kernel before 5.17: no drop reasons (%v)", err)
		} else if err != nil {
			t.Fatal(err)
		}
	}
	core := 0
	for _, n := range rs.Names() {
		code, _ := rs.Code(n)
		if n == "MAX" || code>>subsysShift != 0 {
			continue // the sentinel, and subsystem reasons (placed by subsystem)
		}
		core++
		if !KnownReason(n) {
			t.Errorf("drop reason %s (value %d) of this kernel has no place in reasonTable", n, code)
		}
	}
	list := ReasonTable(rs)
	if len(list) < core {
		t.Errorf("ReasonTable lists %d reasons, the kernel has %d core reasons", len(list), core)
	}
	for _, ri := range list {
		if ri.Class == "" || ri.Meaning == "" {
			t.Errorf("%s listed without class or meaning: %+v", ri.Name, ri)
		}
	}
	t.Logf("%d core reasons from %s, all placed (%d listed with subsystem reasons)", core, rs.Source, len(list))
}

// TestFormatFixtureReasonsPlaced places every reason of a 6.18 kfree_skb
// format file, the fallback source on kernels without BTF.
func TestFormatFixtureReasonsPlaced(t *testing.T) {
	b, err := os.Open("testdata/format/linux-6.18.format")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	f, err := ParseFormat(b)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ReasonsFromFormat(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rs.Names() {
		if n != "MAX" && !KnownReason(n) {
			t.Errorf("reason %s of the 6.18 format fixture has no place", n)
		}
	}
}
