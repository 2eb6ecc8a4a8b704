package diagnose

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

// TestRPFilterByMode: strict mode's drops are asymmetric routing or no
// route back, and loose mode is proposed with a way to tell them apart; in
// loose mode they can only be sources with no route back, and loose mode
// is not proposed again.
func TestRPFilterByMode(t *testing.T) {
	tests := []struct {
		mode      string
		wantCause string
		wantFix   []string
	}{
		{"1", "asymmetric routing, which loose mode accepts", []string{
			"sysctl -w net.ipv4.conf.all.rp_filter=2  # now 1; loose mode, for asymmetric routing",
			"ip route get SOURCE  # the route back to a dropped source: another interface than the one it arrived on is asymmetric routing, an error is no route back",
			"if ip route get finds no route back, loose mode will not help: add a route to the senders' network instead",
		}},
		{"2", "no route back at all: a missing route", []string{
			"ip route get SOURCE  # the route back to a dropped source: another interface than the one it arrived on is asymmetric routing, an error is no route back",
			"add a route back to the senders' network (ip route add NETWORK via GATEWAY dev INTERFACE), or a default route",
		}},
	}
	for _, tt := range tests {
		t.Run("rp_filter="+tt.mode, func(t *testing.T) {
			s := maps.Clone(sys)
			s["net.ipv4.conf.all.rp_filter"] = tt.mode
			a := snap(s, ctr(counters.ProcNetNetstat, "", rpFilterField, 0, stage.IP))
			b := snap(s, ctr(counters.ProcNetNetstat, "", rpFilterField, 300, stage.IP))
			r := AnalyzeWith(a, b, 5*time.Second, Extra{})
			if len(r.Findings) != 1 || r.Findings[0].Stage != stage.IP || r.Findings[0].Drops != 300 {
				t.Fatalf("findings = %+v", r.Findings)
			}
			f := r.Findings[0]
			if !strings.Contains(f.Cause, tt.wantCause) {
				t.Errorf("cause %q, want it to say %q", f.Cause, tt.wantCause)
			}
			if d := cmp.Diff(tt.wantFix, fixLines(f.Fix)); d != "" {
				t.Errorf("fixes (-want +got):\n%s", d)
			}
		})
	}
}
