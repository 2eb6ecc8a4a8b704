package probe

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestLocal runs both ends on loopback, paced and at full speed (with
// sendmmsg, and with GSO and GRO when NETDROP_GSO is set), and checks the
// accounting invariants of the final report.
func TestLocal(t *testing.T) {
	gso := os.Getenv("NETDROP_GSO") != ""
	for _, tt := range []struct {
		name string
		rate float64
	}{
		{"paced", 50000},
		{"max", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rep, err := RunLocal(ctx, "", ServerConfig{RcvBuf: 8 << 20, GRO: gso},
				ClientConfig{Rate: tt.rate, Size: 64, Duration: 500 * time.Millisecond, GSO: gso})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, rep)
			t.Logf("sent %d (%.0f/s) received %d lost %d socket drops %d latency %+v",
				rep.Sent, rep.Send.Rate, rep.Received, rep.Lost, rep.SocketDrops, rep.Latency)
			if rep.Sent == 0 || rep.Latency == nil || rep.Clock != ClockMonotonic.String() {
				t.Errorf("report %+v", rep)
			}
			if tt.rate > 0 && rep.Send.Rate > tt.rate*1.05 {
				t.Errorf("paced at %.0f/s, sent %.0f/s", tt.rate, rep.Send.Rate)
			}
		})
	}
}
