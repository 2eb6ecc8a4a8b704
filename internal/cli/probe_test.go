package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/probe"
)

func TestProbeLocalJSON(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, proto := range []string{"udp", "tcp"} {
		var out, errb bytes.Buffer
		code := Main(ctx, []string{"probe", "local", "--proto", proto, "--rate", "20000", "--duration", "300ms", "--rcvbuf", "4194304", "--json"}, &out, &errb)
		var rep probe.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%s: exit %d, not one JSON object: %v\n%s\n%s", proto, code, err, out.String(), errb.String())
		}
		if rep.Proto != proto || rep.Sent == 0 || rep.Received+rep.Lost != rep.Sent || rep.Send == nil || rep.Latency == nil {
			t.Errorf("%s: report %+v", proto, rep)
		}
		want := ExitOK
		if rep.Lost > 0 || rep.Corrupted > 0 {
			want = ExitFindings
		}
		if code != want {
			t.Errorf("%s: exit %d, want %d (lost %d)", proto, code, want, rep.Lost)
		}
	}
}

func TestProbeLocalText(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	Main(ctx, []string{"probe", "local", "--rate", "20000", "--duration", "1200ms", "--rcvbuf", "4194304"}, &out, &errb)
	s := out.String()
	for _, want := range []string{"s  recv ", "sent ", "received ", "lost ", "latency     p50", "unaccounted"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, s, errb.String())
		}
	}
}

func TestProbeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"probe", "local", "--proto", "sctp"},
		{"probe", "client"},
		{"probe", "local", "--rate", "fast"},
		{"probe", "local", "--size", "10"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != ExitError {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitError, errb.String())
		}
	}
}
