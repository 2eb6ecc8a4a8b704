package probe

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestLocalSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := RunLocal(ctx, "", ServerConfig{RcvBuf: 8 << 20}, ClientConfig{Rate: 50000, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	if rep.Received+rep.Lost != rep.Sent || rep.Sent == 0 {
		t.Errorf("received %d + lost %d != sent %d", rep.Received, rep.Lost, rep.Sent)
	}
}

func TestLocalMaxQuick(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	ctx := context.Background()
	gso := os.Getenv("NETDROP_GSO") != ""
	rep, err := RunLocal(ctx, "", ServerConfig{RcvBuf: 32 << 20, GRO: gso}, ClientConfig{Size: 64, Duration: 2 * time.Second, GSO: gso})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d rate %.0f recv %d lost %d drops %d lat %+v", rep.Sent, rep.Send.Rate, rep.Received, rep.Lost, rep.SocketDrops, rep.Latency)
}
