package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	tests := []struct {
		spec, want string
		err        bool
	}{
		{"", "", false},
		{"web", "/run/netns/web", false},
		{"/var/run/netns/x", "/var/run/netns/x", false},
		{"pid:42", "/proc/42/ns/net", false},
		{"pid:0", "", true},
		{"pid:abc", "", true},
	}
	for _, tt := range tests {
		got, err := Path(tt.spec)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("Path(%q) = %q, %v; want %q, error %v", tt.spec, got, err, tt.want, tt.err)
		}
	}
}

func TestDoUnknownNamespace(t *testing.T) {
	err := Do("ndt-netns-no-such-namespace", func() error { t.Fatal("fn ran"); return nil })
	if err == nil || !strings.Contains(err.Error(), "no such namespace") {
		t.Fatalf("err = %v, want a clear 'no such namespace'", err)
	}
}

// TestDoEntersAndReturns enters a fresh namespace, checks the thread is in
// it, and checks the caller is back in its own namespace afterwards.
func TestDoEntersAndReturns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	name := "ndt-netns-do"
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	want, err := ID(name)
	if err != nil {
		t.Fatal(err)
	}
	home, err := ID("")
	if err != nil {
		t.Fatal(err)
	}
	err = Do(name, func() error {
		got, err := ID("")
		if err != nil {
			return err
		}
		if got != want {
			t.Errorf("inside: namespace %d, want %d", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if back, _ := ID(""); back != home {
		t.Errorf("after Do: namespace %d, want the original %d", back, home)
	}
}
