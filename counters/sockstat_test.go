package counters

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

func TestSockstatSource(t *testing.T) {
	tests := []struct {
		fixture     string
		want        map[string]uint64
		count       int
		unavailable []SourceID
	}{
		{"linux-6.18", map[string]uint64{
			"sockets:used": 16, "TCP:inuse": 1, "TCP:orphan": 0, "TCP:tw": 6, "TCP:alloc": 1, "TCP:mem": 98,
			"UDP:inuse": 0, "UDP:mem": 0, "FRAG:memory": 0, "TCP6:inuse": 0, "UDP6:inuse": 0, "FRAG6:memory": 0,
		}, 12 + 6, nil},
		{"linux-4.19", map[string]uint64{"TCP:tw": 12, "UDP:mem": 2}, 12, []SourceID{ProcNetSockstat6}},
		{"broken", map[string]uint64{"sockets:used": 11, "TCP:mem": 98, "UDP:inuse": 0, "FRAG:memory": 0}, 8, []SourceID{ProcNetSockstat, ProcNetSockstat6}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			s, err := collectOne(t, tt.fixture, SockstatSource{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, c := range s.Counters {
				got[c.Field] = c.Value
				if !c.Gauge {
					t.Errorf("%s is not a gauge", c.Field)
				}
			}
			if diff := cmp.Diff(tt.want, pick(got, tt.want)); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
			if len(got) != tt.count {
				t.Errorf("%d counters, want %d: %v", len(got), tt.count, got)
			}
			var srcs []SourceID
			for _, u := range s.Unavailable {
				srcs = append(srcs, u.Source)
			}
			if diff := cmp.Diff(tt.unavailable, srcs); diff != "" {
				t.Errorf("unavailable (-want +got):\n%s\n%v", diff, s.Unavailable)
			}
		})
	}
}

func TestSockstatBrokenReasons(t *testing.T) {
	s, _ := collectOne(t, "broken", SockstatSource{})
	rs := unavailable(s, ProcNetSockstat)
	if len(rs) != 1 {
		t.Fatalf("unavailable = %q", rs)
	}
	for _, part := range []string{string(ProcNetSockstat), "line 2: TCP:orphan", "line 3: UDP", "line 4"} {
		if !strings.Contains(rs[0], part) {
			t.Errorf("reason %q lacks %q", rs[0], part)
		}
	}
}

func TestSockstatStages(t *testing.T) {
	s, _ := collectOne(t, "linux-6.18", SockstatSource{})
	for _, c := range s.Counters {
		want := map[string]stage.ID{"TCP:tw": stage.Ports, "TCP:orphan": stage.Ports, "TCP:mem": stage.SocketRcvbuf, "UDP:mem": stage.SocketRcvbuf}[c.Field]
		if c.Stage != want {
			t.Errorf("%s: stage %q, want %q", c.Field, c.Stage, want)
		}
	}
}

func FuzzParseSockstat(f *testing.F) {
	seedFiles(f, "proc/net/sockstat")
	seedFiles(f, "proc/net/sockstat6")
	f.Fuzz(func(t *testing.T, in string) {
		vs, _ := parseSockstat(strings.NewReader(in))
		if len(vs) > len(strings.Fields(in))/2 {
			t.Fatalf("%d values from %d words", len(vs), len(strings.Fields(in)))
		}
	})
}
