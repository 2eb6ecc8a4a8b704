package sockets_test

import (
	"testing"

	"github.com/netdrop/netdrop/sockets"
)

// TestTargetThroughPublicNames builds namespace targets with this package's
// exported names only, as a program outside the module must.
func TestTargetThroughPublicNames(t *testing.T) {
	parsed, err := sockets.ParseTarget("pid:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		target sockets.Target
		want   string
	}{
		{sockets.Target{}, sockets.Target{}.String()},
		{sockets.NamedNetns("blue"), "blue"},
		{sockets.NetnsOfPID(1), parsed.String()},
	} {
		o := sockets.Options{Netns: tt.target}
		if got := o.Netns.String(); got != tt.want {
			t.Errorf("target %v: String() = %q, want %q", tt.target, got, tt.want)
		}
	}
	if !(sockets.Options{}).Netns.IsCurrent() {
		t.Error("the zero Options does not read the current namespace")
	}
}
