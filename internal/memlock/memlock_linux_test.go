package memlock

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaise checks the limit after Raise: the soft limit at the hard one,
// which is unlimited where the process may raise it (CAP_SYS_RESOURCE; a
// container's root often may not) and never lower than before. The test
// process's limit stays raised, as netdrop's does.
func TestRaise(t *testing.T) {
	var before unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &before); err != nil {
		t.Fatal(err)
	}
	if err := Raise(); err != nil {
		t.Fatalf("Raise: %v", err)
	}
	var after unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &after); err != nil {
		t.Fatal(err)
	}
	if after.Cur != after.Max || after.Max < before.Max {
		t.Errorf("after Raise: soft %d, hard %d; before: soft %d, hard %d; want soft = hard ≥ %d",
			after.Cur, after.Max, before.Cur, before.Max, before.Max)
	}
}
