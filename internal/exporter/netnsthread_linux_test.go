package exporter

import (
	"runtime"
	"testing"

	"github.com/netdrop/netdrop/internal/netns"
	"golang.org/x/sys/unix"
)

// TestDoOnOwnThreadDropsAStuckThread stands in for netns.Do failing to
// return to the original namespace: fn leaves its thread locked, as Do
// then does. The next namespace read by the same worker must not run on
// that thread, which would still be in the other namespace.
func TestDoOnOwnThreadDropsAStuckThread(t *testing.T) {
	stuck := -1
	if err := doOnOwnThread(netns.Current(), func() error {
		runtime.LockOSThread() // never unlocked: the thread is dropped with its goroutine
		stuck = unix.Gettid()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		var tid int
		if err := doOnOwnThread(netns.Current(), func() error {
			tid = unix.Gettid()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if tid == stuck {
			t.Fatalf("read %d ran on thread %d, which a read left locked (and would be in the wrong namespace)", i, tid)
		}
	}
}
