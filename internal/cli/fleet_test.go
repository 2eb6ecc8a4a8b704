package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// TestFleetErrors: a missing --prometheus, a bad --header and a query API
// that cannot be reached are exit 2 with one line that says which.
func TestFleetErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet"}, "--prometheus URL is required"},
		{[]string{"fleet", "--prometheus", down, "--header", "novalue"}, `--header "novalue": want NAME=VALUE`},
		{[]string{"fleet", "--prometheus", down, "--top", "0"}, "--top must be positive"},
		{[]string{"fleet", "--prometheus", down}, "netdrop: cannot reach " + down},
	} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), tc.args, &stdout, &stderr); code != ExitError {
			t.Errorf("%v: exit %d, want %d", tc.args, code, ExitError)
		}
		if !strings.Contains(stderr.String(), tc.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%v: stderr %q, want one line with %q", tc.args, stderr.String(), tc.want)
		}
	}
}
