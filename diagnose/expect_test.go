package diagnose

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

func TestParseExpect(t *testing.T) {
	tests := []struct {
		in      string
		want    Expect
		wantErr bool
	}{
		{in: "netfilter", want: Expect{Stage: stage.Netfilter}},
		{in: "netfilter:udp dport 9999", want: Expect{Stage: stage.Netfilter, Match: "udp dport 9999"}},
		{in: "no-socket:NO_SOCKET", want: Expect{Stage: stage.NoSocket, Match: "NO_SOCKET"}},
		{in: "firewall:9999", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseExpect(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseExpect(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseExpect(%q) (-want +got):\n%s", tt.in, diff)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestHasWord(t *testing.T) {
	tests := []struct {
		s, w string
		want bool
	}{
		{"inet filter input handle 7: udp dport 9999 drop", "9999", true},
		{"inet filter input handle 7: udp dport 19999 drop", "9999", false},
		{"inet filter input handle 7: udp dport 9999 drop", "handle 7", true},
		{"inet filter input handle 71: udp dport 9999 drop", "handle 7", false},
		{"NO_SOCKET at __udp4_lib_rcv+0x4bc", "no_socket", true},
		{"NO_SOCKET_X at f", "NO_SOCKET", false},
		{"anything", "", false},
	}
	for _, tt := range tests {
		if got := hasWord(tt.s, tt.w); got != tt.want {
			t.Errorf("hasWord(%q, %q) = %v", tt.s, tt.w, got)
		}
	}
}

// TestExpectedDrops: declared drops stay visible, as info with the reason
// "expected", and a firewall finding is split by rule.
func TestExpectedDrops(t *testing.T) {
	const nft = counters.NetlinkNftables
	rule := func(obj string, v uint64) counters.Counter { return ctr(nft, obj, "packets", v, stage.Netfilter) }
	cs := []counters.Counter{
		rule("inet filter input handle 7: udp dport 9999 drop", 2000),
		rule("inet filter input handle 9: tcp dport 22 drop", 30),
		ctr(counters.ProcNetSNMP, "", "Udp:RcvbufErrors", 400, stage.SocketRcvbuf),
	}
	tr := &droptrace.Snapshot{Rows: []droptrace.Row{
		{Count: 500, Reason: "NO_SOCKET", Location: "__udp4_lib_rcv+0x4bc", Function: "__udp4_lib_rcv", Stage: stage.NoSocket},
	}}
	type out struct {
		Stage    stage.ID
		Severity Severity
		Drops    uint64
		Expected string
	}
	tests := []struct {
		name   string
		expect []string
		want   []out
	}{
		{
			name: "nothing declared",
			want: []out{
				{stage.NoSocket, Critical, 500, ""},
				{stage.SocketRcvbuf, Critical, 400, ""},
				{stage.Netfilter, Warning, 2030, ""},
			},
		},
		{
			name:   "one rule of two, by port",
			expect: []string{"netfilter:9999"},
			want: []out{
				{stage.NoSocket, Critical, 500, ""},
				{stage.SocketRcvbuf, Critical, 400, ""},
				{stage.Netfilter, Warning, 30, ""},
				{stage.Netfilter, Info, 2000, "netfilter:9999"},
			},
		},
		{
			name:   "a whole stage, and a tracer reason",
			expect: []string{"netfilter", "no-socket:NO_SOCKET"},
			want: []out{
				{stage.SocketRcvbuf, Critical, 400, ""},
				{stage.Netfilter, Info, 2030, "netfilter"},
				{stage.NoSocket, Info, 500, "no-socket:NO_SOCKET"},
			},
		},
		{
			name:   "a match that names nothing changes nothing",
			expect: []string{"netfilter:handle 8", "socket-rcvbuf:5353"},
			want: []out{
				{stage.NoSocket, Critical, 500, ""},
				{stage.SocketRcvbuf, Critical, 400, ""},
				{stage.Netfilter, Warning, 2030, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exps, err := ParseExpects(tt.expect)
			if err != nil {
				t.Fatal(err)
			}
			r := analyzeDeltas(5*time.Second, tr, cs...)
			stages := r.Stages
			MarkExpected(r, exps)
			var got []out
			for _, f := range r.Findings {
				got = append(got, out{f.Stage, f.Severity, f.Drops, f.Expected})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(stages, r.Stages); diff != "" {
				t.Errorf("expected drops must stay in the stage totals (-before +after):\n%s", diff)
			}
		})
	}
}
