package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
	"github.com/netdrop/netdrop/stage"
)

// Fuzz targets for what a probe server and client read from the network:
// control messages (Hello, Fin, a takeover by another sender), the TCP
// stream, and the report a client decodes. None needs root.

// op is one datagram of a FuzzControl script, six bytes:
//
//	0  bits 0-2 frame type (0, 6 and 7 are not types); bit 3 damage the
//	   frame; bit 4 a sequence number near 2^63; bit 5 the second peer
//	1  sender id, one of four so that senders collide
//	2  flags (attempt number), 3 sequence number, 4-5 milliseconds since the
//	   previous datagram (up to 65 s: past idleTakeover and the reorder window)
type op [6]byte

func (o op) datagram() []byte {
	h := frame.Header{Type: frame.Type(o[0] & 7), Sender: uint32(o[1]%4) + 1, Flags: uint16(o[2]), Seq: uint64(o[3])}
	if o[0]&16 != 0 {
		h.Seq += 1 << 63
	}
	var payload []byte
	if h.Type == frame.Data {
		payload = make([]byte, 8)
	}
	d := frame.Append(nil, &h, payload)
	if o[0]&8 != 0 {
		d[len(d)-1] ^= 0x5a
	}
	return d
}

func (o op) wait() time.Duration {
	return time.Duration(uint16(o[4])<<8|uint16(o[5])) * time.Millisecond
}

func script(ops ...op) []byte {
	var b []byte
	for _, o := range ops {
		b = append(b, o[:]...)
	}
	return b
}

// FuzzControl drives the UDP server's control logic (handle, and the ticks
// and finish of Serve) with a script of datagrams and checks the rules of
// the protocol after each: a Hello between runs starts a run; another
// sender's Hello takes over a run only after it has been idle for
// idleTakeover; only the run's sender's first Fin counts; a Fin between runs
// gets the report again only from where the run's Fin came; everything else
// outside a run is stray, counted once; garbage and other senders' frames
// do not keep a run alive; every report the server finishes passes the
// client's checks.
func FuzzControl(f *testing.F) {
	hello, fin := byte(frame.Hello), byte(frame.Fin)
	data := byte(frame.Data)
	f.Add(script(op{hello, 0, 1}, op{data, 0, 0, 0}, op{data, 0, 0, 1}, op{data, 0, 0, 3}, op{fin, 0, 1, 4}, op{fin, 0, 2, 4, 1, 0}))
	// A second sender's Hello during the run (refused), then after 2.5 s
	// of silence (takeover); a Fin from the first sender then counts for
	// nothing.
	f.Add(script(op{hello, 0, 2}, op{data, 0, 0, 0}, op{hello, 1, 1}, op{hello, 1, 1, 0, 9, 196}, op{fin, 0, 1, 1}, op{fin, 1, 1, 0, 1, 0}))
	// Garbage, a damaged Hello, a Fin from another peer after a run.
	f.Add(script(op{0}, op{hello | 8}, op{hello, 2}, op{fin, 2, 1, 0}, op{fin | 32, 2, 3, 0, 1, 0}, op{7, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		srv, err := ListenUDP("127.0.0.1:0", ServerConfig{Collect: noCollect, ReorderWindow: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var peers [2]*net.UDPAddr
		for i := range peers {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			peers[i] = c.LocalAddr().(*net.UDPAddr)
		}
		ctx := context.Background()
		now := time.Unix(1e9, 0)
		var r *run
		accounted := map[*run]bool{}
		var helloStarts, resends, n uint64
		for ; len(b) >= len(op{}); b = b[len(op{}):] {
			n++
			o := op(b[:len(op{})])
			d := o.datagram()
			peer := peers[0]
			if o[0]&32 != 0 {
				peer = peers[1]
			}
			now = now.Add(o.wait())
			h, _, derr := frame.Decode(d)
			stray0 := srv.Stray().Datagrams
			var prev run
			if r != nil {
				prev = *r
			}
			between := r == nil || r.report != nil
			got := srv.handle(ctx, r, d, func() *net.UDPAddr { return peer }, now, now.UnixNano(), monoNs(now))
			strayed := srv.Stray().Datagrams - stray0
			switch {
			case between && derr == nil && h.Type == frame.Hello:
				helloStarts++
				if got == r || got.acc.Sender != h.Sender || !got.hello || got.helloMissed != attemptsBefore(h) {
					t.Fatalf("hello of %d between runs did not start its run", h.Sender)
				}
			case between && derr == nil && h.Type == frame.Fin && r != nil && h.Sender == r.acc.Sender:
				if got != r {
					t.Fatal("a fin between runs replaced the run")
				}
				if peer.AddrPort() == r.finAddr.AddrPort() {
					resends++
				} else if strayed != 1 {
					t.Fatal("a fin from elsewhere was not counted stray")
				}
			case between && derr == nil && h.Type == frame.Data && (r == nil || h.Sender != r.acc.Sender):
				if got == r || got.acc.Sender != h.Sender || got.hello {
					t.Fatal("data between runs did not start a run without handshake")
				}
			case between:
				if got != r || strayed != 1 {
					t.Fatalf("%v (%v) between runs: run replaced %v, stray +%d; want it counted stray once", h.Type, derr, got != r, strayed)
				}
			case derr == nil && h.Type == frame.Hello && h.Sender != r.acc.Sender:
				refused := prev.hello && now.Sub(prev.lastData) < idleTakeover
				if refused != (got == r) {
					t.Fatalf("hello of %d into the run of %d, idle %v, handshake %v: takeover %v", h.Sender, prev.acc.Sender, now.Sub(prev.lastData), prev.hello, got != r)
				}
				if got != r && got.acc.Sender != h.Sender {
					t.Fatal("takeover by the wrong sender")
				}
			case derr == nil && h.Type == frame.Fin:
				if got != r {
					t.Fatal("a fin replaced the run")
				}
				switch {
				case h.Sender != r.acc.Sender || prev.hasFin:
					if r.hasFin != prev.hasFin || r.finSent != prev.finSent {
						t.Fatal("a fin from another sender, or a repeated one, changed the run's end")
					}
				case !r.hasFin || r.finSent != h.Seq:
					t.Fatal("the sender's fin was not taken")
				}
			default:
				if got != r {
					t.Fatalf("%v (%v) in a run replaced it", h.Type, derr)
				}
				if (derr != nil || h.Sender != r.acc.Sender) && r.lastData != prev.lastData {
					t.Fatal("garbage or another sender's frame kept the run alive")
				}
			}
			if !between && got == r && strayed != 0 {
				t.Fatal("a datagram in a run was counted stray")
			}
			r = got
			if r == nil || r.report != nil {
				continue
			}
			accounted[r] = true
			a := r.acc
			c := a.Tracker.Counts
			if sum := c.Received + c.Duplicates + c.Late + c.OutOfWindow + a.Corrupted + a.Invalid + a.Foreign + a.Control; sum != a.Datagrams {
				t.Fatalf("classes sum to %d, datagrams %d", sum, a.Datagrams)
			}
			// Serve's tick and finish.
			tick(&srv.cfg, r, now)
			if r.hasFin && now.Sub(r.finAt) >= srv.cfg.ReorderWindow {
				rep := srv.finish(ctx, r, now)
				h, p, err := frame.Decode(r.report)
				if err != nil || h.Type != frame.Report || h.Sender != r.acc.Sender {
					t.Fatalf("report frame: %v %v", h.Type, err)
				}
				dec, err := decodeReport(p)
				if err != nil {
					t.Fatalf("the client refuses the server's own report: %v\n%s", err, p)
				}
				if diff := cmp.Diff(rep, dec); diff != "" {
					t.Fatalf("report after the wire (-sent +decoded):\n%s", diff)
				}
			}
		}
		// Every datagram is in exactly one place: a run's accounting, a
		// Hello that started a run (not accounted in it), a resent report,
		// or the stray count.
		var inRuns uint64
		for r := range accounted {
			inRuns += r.acc.Datagrams
		}
		if sum := inRuns + helloStarts + resends + srv.Stray().Datagrams; sum != n {
			t.Fatalf("%d datagrams, %d found: %d in runs, %d hellos starting one, %d resends, %d stray",
				n, sum, inRuns, helloStarts, resends, srv.Stray().Datagrams)
		}
	})
}

// tcpRun is the stream of a short well-behaved TCP run.
func tcpRun(sender uint32, n uint64) []byte {
	b := frame.Append(nil, &frame.Header{Type: frame.Hello, Sender: sender}, nil)
	for seq := range n {
		b = frame.Append(b, &frame.Header{Type: frame.Data, Sender: sender, Seq: seq}, make([]byte, 20))
	}
	return frame.Append(b, &frame.Header{Type: frame.Fin, Sender: sender, Seq: n, Flags: 1}, nil)
}

// startsRun reports whether a frame that could start a run (a Hello or Data
// frame that decodes) begins anywhere in b: the scanner can return no frame
// that does not.
func startsRun(b []byte) bool {
	for i := range b {
		h, err := frame.DecodeHeader(b[i:])
		if err != nil || (h.Type != frame.Hello && h.Type != frame.Data) || len(b)-i < h.Len() {
			continue
		}
		if _, _, err := frame.Decode(b[i : i+h.Len()]); err == nil {
			return true
		}
	}
	return false
}

// FuzzTCPStream sends any bytes on a connection to the real TCP server on
// loopback and half-closes it: the server must close the connection (never
// hang), send back only well-formed HelloAck and Report frames (a report
// the client accepts), and count a connection that started no run as stray
// with every byte it sent.
func FuzzTCPStream(f *testing.F) {
	f.Add(tcpRun(7, 5))
	f.Add(append([]byte("GET / HTTP/1.1\r\n\r\n"), tcpRun(8, 3)...))
	f.Add(stallingHeader(9))
	f.Add([]byte("NDPF\x01\x04"))
	srv, err := ListenTCP("127.0.0.1:0", ServerConfig{Collect: noCollect, HelloTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	f.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		st0 := srv.Stray()
		c, err := net.DialTCP("tcp", nil, srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Read while writing: the server answers every Hello, and a peer
		// that does not read would stall it until its write deadline.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		type result struct {
			out []byte
			err error
		}
		read := make(chan result, 1)
		go func() {
			out, err := io.ReadAll(c)
			read <- result{out, err}
		}()
		c.Write(b) // the server may have closed after a Fin: not an error here
		c.CloseWrite()
		res := <-read
		out, err := res.out, res.err
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the server did not close the connection")
		}
		sc := frame.NewScanner(bytes.NewReader(out), 0)
		for {
			h, p, err := sc.Next()
			if err == io.EOF {
				break
			}
			if err == io.ErrUnexpectedEOF {
				break // cut short by a reset after the report
			}
			if err != nil {
				t.Fatalf("the server sent bytes that are not a frame: %v", err)
			}
			switch h.Type {
			case frame.HelloAck:
			case frame.Report:
				if _, err := decodeReport(p); err != nil {
					t.Fatalf("the server's report fails the client's checks: %v", err)
				}
			default:
				t.Fatalf("the server sent a %v frame", h.Type)
			}
		}
		st := srv.Stray()
		if st.TimedOut != st0.TimedOut || st.Refused != st0.Refused {
			t.Fatalf("a half-closed connection timed out or was refused: %+v then %+v", st0, st)
		}
		if startsRun(b) || len(b) == 0 {
			return
		}
		if len(out) != 0 || st.Conns != st0.Conns+1 || st.ConnBytes != st0.ConnBytes+uint64(len(b)) {
			t.Fatalf("%d bytes that start no run: answered %d bytes, stray %+v then %+v", len(b), len(out), st0, st)
		}
	})
}

// reportSeed is a report as a server sends it: 12 frames sent, 4 lost, 2
// explained by the socket's drops.
func reportSeed(tb testing.TB) []byte {
	acc := NewAccount(64, ClockMonotonic)
	acc.Lock(1)
	for _, seq := range []uint64{0, 1, 2, 5, 6, 7, 8, 9} {
		acc.Datagram(frame.Append(nil, &frame.Header{Type: frame.Data, Sender: 1, Seq: seq}, make([]byte, 8)), 1, 1)
	}
	start := time.Unix(1e9, 0)
	rep := buildReport(Traffic{UDP: true}, acc, 12, 2, 0, 1, start, start.Add(time.Second), nil, nil)
	rep.Stray = &Stray{Datagrams: 3, Bytes: 300}
	b, err := json.Marshal(rep)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzDecodeReport: the client decodes a report that comes from the
// network. Whatever it accepts keeps the invariants it checks, survives a
// second trip through JSON unchanged, and keeps them after the sender's
// share is added; whatever breaks them is an error.
func FuzzDecodeReport(f *testing.F) {
	f.Add(reportSeed(f))
	f.Add([]byte(`{"proto":"tcp","sent":3,"received":3,"attribution":{"lost":0,"stages":[],"unaccounted":0}}`))
	f.Add([]byte(`{"proto":"udp","sent":3,"received":1,"lost":2,"attribution":{"lost":2,"stages":[{"stage":"qdisc","frames":5}],"unaccounted":0}}`))
	f.Add([]byte(`null`))
	tx := &counters.Snapshot{Counters: []counters.Counter{{Source: counters.NetlinkQdisc, Object: "veth0 tbf 1:", Field: "drops", Value: 7, Stage: stage.Qdisc}}}
	f.Fuzz(func(t *testing.T, p []byte) {
		rep, err := decodeReport(p)
		if err != nil {
			return
		}
		if rep.Received+rep.Lost != rep.Sent || rep.Attribution.Lost != rep.Lost {
			t.Fatalf("accepted a report that breaks received + lost = sent: %+v", rep)
		}
		again, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		rep2, err := decodeReport(again)
		if err != nil {
			t.Fatalf("a report accepted once is refused after re-encoding: %v", err)
		}
		if diff := cmp.Diff(rep, rep2); diff != "" {
			t.Fatalf("report changed through JSON (-first +second):\n%s", diff)
		}
		a := AttributeSender(rep.Attribution, tx, TrafficOf(rep.Proto, nil))
		sum := a.Unaccounted
		for _, s := range a.Stages {
			sum += s.Frames
		}
		if sum != a.Lost || a.Lost != rep.Lost {
			t.Fatalf("after the sender's share, stages and unaccounted sum to %d of %d lost", sum, a.Lost)
		}
	})
}
