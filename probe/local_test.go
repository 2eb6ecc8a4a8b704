package probe

import (
	"context"
	"net"
	"os"
	"strings"
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
			var intervals int
			onInterval := func(iv Interval) {
				intervals++
				if iv.TotalReceived+iv.TotalLost+iv.InFlight != iv.Expected {
					t.Errorf("interval at %v: received %d + lost %d + in flight %d != expected %d",
						iv.Elapsed, iv.TotalReceived, iv.TotalLost, iv.InFlight, iv.Expected)
				}
			}
			rep, err := RunLocal(ctx, "", ServerConfig{RcvBuf: 8 << 20, GRO: gso, Interval: 100 * time.Millisecond, OnInterval: onInterval},
				ClientConfig{Rate: tt.rate, Size: 64, Duration: 500 * time.Millisecond, GSO: gso})
			if err != nil {
				t.Fatal(err)
			}
			if intervals == 0 {
				t.Error("no per-interval report in a 500 ms run with a 100 ms interval")
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

// TestLocalIPv6 runs over ::1 with a small buffer and a slow reader: the
// loss must be explained by the socket's own drops, and the evidence must be
// IPv6 counters (Udp6), not IPv4 ones.
func TestLocalIPv6(t *testing.T) {
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := RunLocal(ctx, "[::1]:0", ServerConfig{RcvBuf: 4096, ReaderDelay: 300 * time.Microsecond, Batch: 8},
		ClientConfig{Rate: 50000, Duration: 300 * time.Millisecond, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Lost == 0 || rep.SocketDrops == 0 {
		t.Fatalf("no loss (lost %d, socket drops %d): the test proves nothing", rep.Lost, rep.SocketDrops)
	}
	a := rep.Attribution
	if len(a.Stages) == 0 || a.Stages[0].Stage != "socket-rcvbuf" {
		t.Fatalf("attribution %+v", a)
	}
	for _, e := range a.Stages[0].Evidence {
		if strings.HasPrefix(e.Field, "Udp:") {
			t.Errorf("IPv4 counter %s taken as evidence for an IPv6 probe", e.Field)
		}
	}
	t.Logf("lost %d socket drops %d attribution %+v", rep.Lost, rep.SocketDrops, a)
}
