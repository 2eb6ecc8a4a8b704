package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
)

// The tests here are attacks on the probe servers by a peer on the same
// host (issue 13): each performs the attack on loopback against the real
// server and checks that it now fails safely.

// noCollect skips the counter reads: these tests are about the protocol.
func noCollect(context.Context) *counters.Snapshot { return &counters.Snapshot{} }

// serveTCP starts a TCP server on loopback for the test's lifetime.
func serveTCP(t *testing.T, cfg ServerConfig) *TCPServer {
	t.Helper()
	if cfg.Collect == nil {
		cfg.Collect = noCollect
	}
	srv, err := ListenTCP("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	return srv
}

// stallingHeader is the attack of issue 13: a Hello, then the header of a
// data frame that claims a 1 MiB payload, which never comes.
func stallingHeader(sender uint32) []byte {
	b := frame.Append(nil, &frame.Header{Type: frame.Hello, Sender: sender}, nil)
	d := frame.Append(nil, &frame.Header{Type: frame.Data, Sender: sender}, nil)
	binary.BigEndian.PutUint32(d[12:], frame.MaxPayload)
	return append(b, d[:frame.HeaderLen]...)
}

// realRun is a short TCP run of a well-behaved client; it returns the
// report and how long the run took.
func realRun(t *testing.T, addr string) (Report, time.Duration, error) {
	t.Helper()
	c, err := DialTCP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	rep, err := RunTCP(context.Background(), c, ClientConfig{Rate: 10000, Count: 500})
	return rep, time.Since(start), err
}

// waitClosed reads c until the server closes it (an orderly close or a
// reset) and returns how long that took from start.
func waitClosed(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server did not close the connection within %v", limit)
		}
		return time.Since(start)
	}
}

// waitStray polls the server's Stray totals until ok accepts them.
func waitStray(t *testing.T, get func() Stray, ok func(Stray) bool) Stray {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := get()
		if ok(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTCPStalledPeer: a peer sends a Hello and a header claiming 1 MiB, then
// stalls. Before, the server served one connection at a time without a read
// deadline and a real client in parallel timed out after 3 s waiting for its
// HelloAck; now it completes its run at once, and the stalled peer is
// closed at the idle deadline and counted.
func TestTCPStalledPeer(t *testing.T) {
	const idle = 700 * time.Millisecond
	var mu sync.Mutex
	var reports []Report
	srv := serveTCP(t, ServerConfig{IdleTimeout: idle, OnReport: func(r Report) {
		mu.Lock()
		reports = append(reports, r)
		mu.Unlock()
	}})
	a, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	attackAt := time.Now()
	if _, err := a.Write(stallingHeader(0xbad)); err != nil {
		t.Fatal(err)
	}
	// The server has started the attacker's run when it acknowledges.
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if h, _, err := frame.NewScanner(a, 0).Next(); err != nil || h.Type != frame.HelloAck {
		t.Fatalf("attacker's hello: %v %v", h.Type, err)
	}

	rep, took, err := realRun(t, srv.Addr().String())
	if err != nil {
		t.Fatalf("real client beside a stalled peer: %v (after %v)", err, took)
	}
	checkInvariants(t, rep)
	if rep.Received != 500 || took > idle {
		t.Errorf("real client: received %d of 500 in %v; want all, before the stalled peer's idle deadline %v", rep.Received, took, idle)
	}
	t.Logf("real client beside a stalled peer: %d frames in %v", rep.Received, took)

	closedAfter := waitClosed(t, a, attackAt, idle+2*time.Second)
	if closedAfter < idle {
		t.Errorf("stalled peer closed after %v, before its idle deadline %v", closedAfter, idle)
	}
	st := waitStray(t, srv.Stray, func(s Stray) bool { return s.TimedOut == 1 })
	if st.TimedOut != 1 || st.Conns != 0 || st.Refused != 0 {
		t.Errorf("stray %+v: want one timed-out connection (in a run, so not a stray connection)", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || reports[0].Sender != rep.Sender {
		t.Errorf("server reported %d runs; want the real client's only", len(reports))
	}
}

// TestTCPGarbagePeers: 20 connections send garbage before any Hello, half of
// them then close and half stall. A real client runs in parallel and is not
// delayed; each garbage connection is counted with its bytes, the stalled
// ones closed at the Hello deadline.
func TestTCPGarbagePeers(t *testing.T) {
	const helloTimeout = 500 * time.Millisecond
	const peers = 20
	srv := serveTCP(t, ServerConfig{HelloTimeout: helloTimeout, MaxConns: peers + 2})
	rng := rand.New(rand.NewPCG(13, 3))
	var garbageBytes uint64
	var stalled []net.Conn
	start := time.Now()
	for i := range peers {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		g := make([]byte, 100+rng.IntN(4000))
		for k := range g {
			g[k] = byte(rng.Uint32())
			if g[k] == 'N' {
				g[k] = 'n' // random, but no frame magic anywhere
			}
		}
		if _, err := c.Write(g); err != nil {
			t.Fatal(err)
		}
		garbageBytes += uint64(len(g))
		if i%2 == 0 {
			c.Close()
		} else {
			stalled = append(stalled, c)
		}
	}
	rep, took, err := realRun(t, srv.Addr().String())
	if err != nil || rep.Received != 500 || took > helloTimeout {
		t.Errorf("real client beside %d garbage peers: received %d in %v (%v); want 500 before the hello deadline %v", peers, rep.Received, took, err, helloTimeout)
	}
	for _, c := range stalled {
		if d := waitClosed(t, c, start, helloTimeout+2*time.Second); d < helloTimeout {
			t.Errorf("stalled garbage peer closed after %v, before the hello deadline", d)
		}
	}
	st := waitStray(t, srv.Stray, func(s Stray) bool { return s.Conns == peers && s.TimedOut == peers/2 })
	if st.Conns != peers || st.ConnBytes != garbageBytes || st.TimedOut != peers/2 || st.Refused != 0 {
		t.Errorf("stray %+v: want %d connections, %d bytes, %d timed out", st, peers, garbageBytes, peers/2)
	}
	if rep.Stray == nil || rep.Stray.LastFrom != "" {
		t.Errorf("the report carries stray %+v; want the totals, without the last peer's address", rep.Stray)
	}
}

// TestTCPConnBound: with MaxConns connections stalled before their Hello, the
// next connection is closed at once and counted as refused; once the Hello
// deadline has closed the stalled ones, a real client runs again.
func TestTCPConnBound(t *testing.T) {
	const maxConns = 4
	const helloTimeout = 600 * time.Millisecond
	srv := serveTCP(t, ServerConfig{MaxConns: maxConns, HelloTimeout: helloTimeout})
	var stalled []net.Conn
	for range maxConns {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("x")) // a byte, so that the server must wait for more
		stalled = append(stalled, c)
	}
	start := time.Now()
	// The server resets the connection at once, which the dial itself
	// may already see.
	if extra, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		defer extra.Close()
		if d := waitClosed(t, extra, time.Now(), helloTimeout/2); d > helloTimeout/2 {
			t.Errorf("connection beyond the bound closed after %v", d)
		}
	}
	st := waitStray(t, srv.Stray, func(s Stray) bool { return s.Refused == 1 })
	if st.Refused != 1 {
		t.Errorf("stray %+v: want 1 refused", st)
	}
	for _, c := range stalled {
		waitClosed(t, c, start, helloTimeout+2*time.Second)
	}
	if rep, took, err := realRun(t, srv.Addr().String()); err != nil || rep.Received != 500 {
		t.Errorf("real client after the stalled peers timed out: %v, received %d in %v", err, rep.Received, took)
	}
	st = waitStray(t, srv.Stray, func(s Stray) bool { return s.TimedOut == maxConns })
	if st.TimedOut != maxConns || st.Conns != maxConns || st.ConnBytes != maxConns {
		t.Errorf("stray %+v: want %d timed-out connections of one byte each", st, maxConns)
	}
}

// TestUDPStray: random datagrams to an idle UDP server. Before, 34,017 of
// them left no count and no log line; now each is counted, shown on the
// rate-limited stray line and in the next run's report.
func TestUDPStray(t *testing.T) {
	const n = 3000
	var mu sync.Mutex
	var lines []Stray
	srv, err := ListenUDP("127.0.0.1:0", ServerConfig{Collect: noCollect, StrayEvery: 200 * time.Millisecond, OnStray: func(s Stray) {
		mu.Lock()
		lines = append(lines, s)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()

	drops0, err := socketDrops(srv.conn)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(13, 5))
	var bytes uint64
	start := time.Now()
	for i := range n {
		d := make([]byte, 1+rng.IntN(1400))
		for k := range d {
			d[k] = byte(rng.Uint32())
		}
		if d[0] == 'N' {
			d[0] = 'n' // random, but never a frame
		}
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
		bytes += uint64(len(d))
		if i%50 == 49 {
			// Let the reader catch up so that the socket's queue (208 KiB
			// by default) does not overflow.
			want := uint64(i + 1)
			waitStray(t, srv.Stray, func(s Stray) bool { return s.Datagrams+socketDropsSince(t, srv, drops0) >= want })
		}
	}
	st := waitStray(t, srv.Stray, func(s Stray) bool { return s.Datagrams+socketDropsSince(t, srv, drops0) >= n })
	drops1 := drops0 + socketDropsSince(t, srv, drops0)
	if st.Datagrams+(drops1-drops0) != n || st.Bytes > bytes {
		t.Errorf("stray %d datagrams (%d bytes) + socket drops %d; sent %d (%d bytes)", st.Datagrams, st.Bytes, drops1-drops0, n, bytes)
	}
	if drops1 != drops0 || st.Bytes != bytes {
		t.Errorf("socket dropped %d; stray bytes %d of %d", drops1-drops0, st.Bytes, bytes)
	}
	if st.LastFrom != c.LocalAddr().String() {
		t.Errorf("last stray peer %q; want %s", st.LastFrom, c.LocalAddr())
	}

	// A burst the socket cannot hold: what it dropped is stray too, so
	// counted and dropped add up to what was sent.
	const burst = 5000
	for range burst {
		if _, err := c.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	st = waitStray(t, srv.Stray, func(s Stray) bool { return s.Datagrams+s.SocketDrops >= n+burst })
	kernel := socketDropsSince(t, srv, drops0)
	if st.Datagrams+st.SocketDrops != n+burst || st.SocketDrops != kernel {
		t.Errorf("after a burst of %d: %d counted + %d dropped (the socket's counter says %d); want %d", burst, st.Datagrams, st.SocketDrops, kernel, n+burst)
	}
	t.Logf("%d garbage datagrams: %d counted, %d dropped by the socket", n+burst, st.Datagrams, st.SocketDrops)

	// A run afterwards is not disturbed and its report carries the totals.
	rc, err := DialUDP(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rep, err := RunUDP(context.Background(), rc, ClientConfig{Rate: 20000, Count: 500})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Received != 500 || rep.Invalid != 0 || rep.Stray == nil || rep.Stray.Datagrams != st.Datagrams {
		t.Errorf("run after the garbage: received %d invalid %d stray %+v", rep.Received, rep.Invalid, rep.Stray)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// At most one line per StrayEvery, plus the last one when Serve ends.
	if max := int(elapsed/(200*time.Millisecond)) + 2; len(lines) == 0 || len(lines) > max {
		t.Fatalf("%d stray lines in %v; want 1..%d", len(lines), elapsed, max)
	}
	if last := lines[len(lines)-1]; last.Datagrams+last.SocketDrops != n+burst {
		t.Errorf("last stray line %+v; want %d datagrams counted or dropped", last, n+burst)
	}
}

// socketDropsSince reads the server socket's drop counter (SO_MEMINFO), the
// reference for datagrams that never reached netdrop's reader.
func socketDropsSince(t *testing.T, srv *UDPServer, drops0 uint64) uint64 {
	t.Helper()
	d, err := socketDrops(srv.conn)
	if err != nil {
		t.Fatal(err)
	}
	return d - drops0
}

// TestUDPGarbageKeepsNoRunAlive: a peer starts a UDP run with a Hello and
// then sends only garbage. A run that has gone quiet for idleTakeover may be
// taken over by another sender's Hello; before, any datagram, garbage too,
// counted as the run's traffic, so garbage every second kept a real client
// out (it gave up after 3 s without a HelloAck). Now only the run's own data
// frames keep it alive, and the client takes over once it is idle.
func TestUDPGarbageKeepsNoRunAlive(t *testing.T) {
	srv, err := ListenUDP("127.0.0.1:0", ServerConfig{Collect: noCollect})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	a, err := net.DialUDP("udp", nil, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write(frame.Append(nil, &frame.Header{Type: frame.Hello, Sender: 0xbad, Flags: 1}, nil))
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := a.Read(make([]byte, 256)); err != nil {
		t.Fatalf("attacker's hello: %v", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
				a.Write([]byte("garbage to keep the run busy"))
			}
		}
	}()
	c, err := DialUDP(srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	rep, err := RunUDP(context.Background(), c, ClientConfig{Rate: 10000, Count: 200})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("real client beside a garbage peer: %v after %v", err, took)
	}
	if rep.Received != 200 || took > idleTakeover+time.Second {
		t.Errorf("real client: received %d of 200 after %v; want all, once the garbage run was idle for %v", rep.Received, took, idleTakeover)
	}
	t.Logf("real client took over the garbage peer's run after %v", took)
}

// TestTCPHelloFlood: every Hello makes the server read the host's counters
// (a snapshot, the costly part of a run's start), one connection at a time.
// Connections that each send a Hello and nothing more must not delay a real
// client beyond its 3 s wait for a HelloAck.
func TestTCPHelloFlood(t *testing.T) {
	const flood = 30
	srv, err := ListenTCP("127.0.0.1:0", ServerConfig{}) // the real counter reads
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	for i := range flood {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(frame.Append(nil, &frame.Header{Type: frame.Hello, Sender: uint32(100 + i)}, nil))
	}
	rep, took, err := realRun(t, srv.Addr().String())
	if err != nil || rep.Received != 500 {
		t.Fatalf("real client after %d hello-only connections: %v, received %d in %v", flood, err, rep.Received, took)
	}
	t.Logf("real client after %d hello-only connections: %d frames in %v", flood, rep.Received, took)
}
