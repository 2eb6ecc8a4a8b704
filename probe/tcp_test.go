package probe

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/netdrop/netdrop/frame"
)

func TestTCPLocal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := RunLocalTCP(ctx, "", ServerConfig{}, ClientConfig{Rate: 50000, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, rep)
	if rep.Sent == 0 || rep.Lost != 0 || rep.Proto != "tcp" || rep.Latency == nil {
		t.Errorf("report %+v", rep)
	}
}

// TestTCPResync writes a stream by hand: good frames with some damaged ones
// and garbage between them. The server must count the damage, resynchronise,
// and account the damaged frames' sequence numbers as lost.
func TestTCPResync(t *testing.T) {
	srv, err := ListenTCP("127.0.0.1:0", ServerConfig{Once: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go srv.Serve(ctx)
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sender, n = 77, 1000
	var stream []byte
	stream = frame.Append(stream, &frame.Header{Type: frame.Hello, Sender: sender}, nil)
	var corrupt, garbage uint64
	for seq := uint64(0); seq < n; seq++ {
		f := frame.Append(nil, &frame.Header{Type: frame.Data, Sender: sender, Seq: seq}, make([]byte, 30))
		switch seq % 50 {
		case 10:
			f[frame.HeaderLen+3] ^= 0x40 // payload bit: CRC mismatch
			corrupt++
		case 20:
			stream = append(stream, "garbage between frames"...)
			garbage++
		}
		stream = append(stream, f...)
	}
	stream = frame.Append(stream, &frame.Header{Type: frame.Fin, Sender: sender, Seq: n, Flags: 1}, nil)
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := frame.NewScanner(c, 0)
	for {
		h, p, err := sc.Next()
		if err != nil {
			t.Fatalf("waiting for the report: %v", err)
		}
		if h.Type != frame.Report {
			continue
		}
		var rep Report
		if err := json.Unmarshal(p, &rep); err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, rep)
		if rep.Corrupted != corrupt || rep.Invalid != garbage || rep.Lost != corrupt || rep.Received != n-corrupt {
			t.Errorf("corrupted %d (want %d) invalid %d (want %d) lost %d received %d of %d",
				rep.Corrupted, corrupt, rep.Invalid, garbage, rep.Lost, rep.Received, n)
		}
		return
	}
}
