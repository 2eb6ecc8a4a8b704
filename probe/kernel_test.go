package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/frame"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/stage"
)

// Kernel tests: each creates its own network namespace with only a loopback
// in it, runs both ends of the probe there (so no other traffic touches the
// namespace's counters), makes a real drop happen, and compares the probe's
// numbers with the kernel's as the reference tools (nstat, nft) show them.

var nsSeq atomic.Int32

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2 (ip) to create namespaces")
	}
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS creates a namespace with loopback up and deletes it at the end.
func newNS(t *testing.T) string {
	t.Helper()
	needRoot(t)
	name := fmt.Sprintf("ndtest-probe-%d-%d", os.Getpid(), nsSeq.Add(1))
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// nsCollect reads netdrop's counters inside ns.
func nsCollect(ns string) func(context.Context) *counters.Snapshot {
	return func(ctx context.Context) *counters.Snapshot {
		s, err := counters.CollectIn(ctx, counters.NamedNetns(ns), counters.Options{})
		if err != nil {
			return counters.Unreadable(counters.NamedNetns(ns), err)
		}
		return s
	}
}

// nstat returns one counter of ns as nstat prints it (absolute value).
func nstat(t *testing.T, ns, name string) uint64 {
	t.Helper()
	out := sh(t, "ip", "netns", "exec", ns, "nstat", "-asz", name)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == name {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("nstat %s: %q", name, line)
			}
			return v
		}
	}
	t.Fatalf("nstat has no %s:\n%s", name, out)
	return 0
}

// startServer listens in ns and serves one run in the background.
func startServer(t *testing.T, ns string, cfg ServerConfig) (*UDPServer, <-chan Report) {
	t.Helper()
	cfg.Once = true
	cfg.Collect = nsCollect(ns)
	var srv *UDPServer
	inNS(t, ns, func() (err error) {
		srv, err = ListenUDP("127.0.0.1:0", cfg)
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan Report, 1)
	done := make(chan struct{})
	prev := cfg.OnReport
	srv.cfg.OnReport = func(r Report) {
		if prev != nil {
			prev(r)
		}
		reports <- r
	}
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return srv, reports
}

func dialIn(t *testing.T, ns, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNS(t, ns, func() (err error) {
		c, err = DialUDP(addr)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func checkInvariants(t *testing.T, rep Report) {
	t.Helper()
	if rep.Received+rep.Lost != rep.Sent {
		t.Errorf("received %d + lost %d != sent %d", rep.Received, rep.Lost, rep.Sent)
	}
	if rep.InFlight != 0 {
		t.Errorf("in flight %d in a final report", rep.InFlight)
	}
	if rep.LossPercent < 0 || rep.LossPercent > 100 {
		t.Errorf("loss %v%%", rep.LossPercent)
	}
	sum := rep.Received + rep.Duplicates + rep.Late + rep.OutOfWindow + rep.Corrupted + rep.Invalid + rep.Foreign + rep.Control
	if rep.Datagrams != sum {
		t.Errorf("datagrams %d != sum of classes %d (%+v)", rep.Datagrams, sum, rep)
	}
	if rep.Send != nil && rep.Send.Sent != rep.Sent {
		t.Errorf("client sent %d, server was told %d", rep.Send.Sent, rep.Sent)
	}
}

// TestRcvbufLossIsExact: a small receive buffer and a slow reader make the
// socket drop; the probe's socket drops must equal the kernel's count (Udp
// RcvbufErrors read with nstat, the whole namespace being this probe's), and
// every lost frame must be explained. On a loaded host the loopback backlog
// (netdev_max_backlog) may also overflow; those drops are counted by the
// kernel as lo rx_dropped (ip -s link) and must be attributed too, so the
// check is exact either way:
//
//	lost data frames + lost Fin copies = socket drops + lo rx_dropped
func TestRcvbufLossIsExact(t *testing.T) {
	ns := newNS(t)
	srv, reports := startServer(t, ns, ServerConfig{RcvBuf: 4096, ReaderDelay: 300 * time.Microsecond, Batch: 8})
	conn := dialIn(t, ns, srv.Addr().String())
	before, loBefore := nstat(t, ns, "UdpRcvbufErrors"), loRxDropped(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := RunUDP(ctx, conn, ClientConfig{Rate: 50000, Duration: 700 * time.Millisecond, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	<-reports
	kernel, backlog := nstat(t, ns, "UdpRcvbufErrors")-before, loRxDropped(t, ns)-loBefore
	checkInvariants(t, rep)
	t.Logf("sent %d received %d lost %d socket drops %d (fin copies missed %d), nstat UdpRcvbufErrors +%d, lo rx_dropped +%d",
		rep.Sent, rep.Received, rep.Lost, rep.SocketDrops, rep.FinMissed, kernel, backlog)
	t.Logf("attribution %+v", rep.Attribution)
	if rep.Lost == 0 {
		t.Fatal("no loss: the small buffer did not overflow, the test proves nothing")
	}
	if rep.SocketDrops != kernel {
		t.Errorf("socket drops %d, nstat UdpRcvbufErrors delta %d", rep.SocketDrops, kernel)
	}
	if rep.Lost+rep.FinMissed != rep.SocketDrops+backlog {
		t.Errorf("lost %d + missed fin copies %d != socket drops %d + lo rx_dropped %d", rep.Lost, rep.FinMissed, rep.SocketDrops, backlog)
	}
	a := rep.Attribution
	if len(a.Stages) == 0 || a.Stages[0].Stage != stage.SocketRcvbuf || a.Stages[0].Frames+backlog < rep.Lost || a.Unaccounted != 0 {
		t.Errorf("attribution %+v, want socket-rcvbuf first with all but the %d backlog drops, none unaccounted", a, backlog)
	}
}

// loRxDropped is the RX dropped counter of lo in ns as ip -s link shows it.
func loRxDropped(t *testing.T, ns string) uint64 {
	t.Helper()
	out := sh(t, "ip", "-n", ns, "-s", "-j", "link", "show", "lo")
	var links []struct {
		Stats64 struct {
			Rx struct {
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link: %v\n%s", err, out)
	}
	return links[0].Stats64.Rx.Dropped
}

// TestNetfilterLoss: an nftables rule drops 1% of the data frames at random
// (numgen); the probe's loss must equal the rule's packet counter as nft
// shows it, be about 1%, and be attributed to netfilter.
func TestNetfilterLoss(t *testing.T) {
	ns := newNS(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft to install the drop rule")
	}
	srv, reports := startServer(t, ns, ServerConfig{RcvBuf: 8 << 20})
	port := srv.Addr().Port
	// Match only Data frames (type byte at UDP payload offset 5, i.e. bit
	// 104 of the transport header) so control frames always pass.
	rules := fmt.Sprintf(`table inet ndprobe {
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport %d @th,104,8 0x01 numgen random mod 100 == 0 counter drop
  }
}`, port)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	conn := dialIn(t, ns, srv.Addr().String())
	loBefore := loRxDropped(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := RunUDP(ctx, conn, ClientConfig{Rate: 60000, Duration: time.Second, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	<-reports
	checkInvariants(t, rep)
	nftDrops, backlog := nftCounter(t, ns), loRxDropped(t, ns)-loBefore
	t.Logf("sent %d lost %d (%.3f%%), nft counter %d, socket drops %d, lo rx_dropped %d, attribution %+v", rep.Sent, rep.Lost, rep.LossPercent, nftDrops, rep.SocketDrops, backlog, rep.Attribution)
	// A loaded host may also overflow the loopback backlog (lo rx_dropped);
	// those frames never reach netfilter. Anything else is a probe error.
	if rep.Lost != nftDrops+backlog {
		t.Errorf("lost %d, nft rule counter %d + lo rx_dropped %d", rep.Lost, nftDrops, backlog)
	}
	if p := 100 * float64(nftDrops) / float64(rep.Sent); p < 0.6 || p > 1.4 {
		t.Errorf("netfilter loss %.3f%%, want about 1%%", p)
	}
	if rep.SocketDrops != 0 {
		t.Errorf("socket drops %d: the run was meant to lose only at netfilter", rep.SocketDrops)
	}
	var nf uint64
	for _, s := range rep.Attribution.Stages {
		if s.Stage == stage.Netfilter {
			nf = s.Frames
		}
	}
	if nf != nftDrops || rep.Attribution.Unaccounted != 0 {
		t.Errorf("netfilter attributed %d of %d, unaccounted %d", nf, rep.Lost, rep.Attribution.Unaccounted)
	}
}

// nftCounter returns the packets counted by the one counter in table ndprobe.
func nftCounter(t *testing.T, ns string) uint64 {
	t.Helper()
	out := sh(t, "ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "ndprobe")
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j: %v", err)
	}
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			if c, ok := e["counter"]; ok {
				var v struct{ Packets uint64 }
				if err := json.Unmarshal(c, &v); err != nil {
					t.Fatal(err)
				}
				return v.Packets
			}
		}
	}
	t.Fatalf("no counter in:\n%s", out)
	return 0
}

// relay is a UDP forwarder between a client and the probe server that swaps
// every 10th data frame with the next one and sends every 10th (offset 8)
// twice, counting what it did.
type relay struct {
	in, out         *net.UDPConn
	swaps, dups     atomic.Uint64
	forwarded, seen atomic.Uint64
}

func startRelay(t *testing.T, ns string, server *net.UDPAddr) *relay {
	t.Helper()
	r := &relay{}
	inNS(t, ns, func() (err error) {
		if r.in, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return err
		}
		r.out, err = net.DialUDP("udp", nil, server)
		return err
	})
	setRcvbuf(r.in, 8<<20)
	setRcvbuf(r.out, 1<<20)
	var client atomic.Pointer[net.UDPAddr]
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client -> server
		defer wg.Done()
		buf := make([]byte, maxDatagram)
		var held []byte
		var i uint64
		for {
			n, from, err := r.in.ReadFromUDP(buf)
			if err != nil {
				return
			}
			client.Store(from)
			d := buf[:n]
			h, _, derr := frame.Decode(d)
			if derr != nil || h.Type != frame.Data {
				r.out.Write(d)
				continue
			}
			r.seen.Add(1)
			switch {
			case held != nil:
				r.out.Write(d)
				r.out.Write(held)
				r.forwarded.Add(2)
				held = nil
				r.swaps.Add(1)
			case i%10 == 5:
				held = append([]byte(nil), d...)
			case i%10 == 8:
				r.out.Write(d)
				r.out.Write(d)
				r.forwarded.Add(2)
				r.dups.Add(1)
			default:
				r.out.Write(d)
				r.forwarded.Add(1)
			}
			i++
		}
	}()
	go func() { // server -> client
		defer wg.Done()
		buf := make([]byte, maxDatagram)
		for {
			n, err := r.out.Read(buf)
			if err != nil {
				return
			}
			if c := client.Load(); c != nil {
				r.in.WriteToUDP(buf[:n], c)
			}
		}
	}()
	t.Cleanup(func() { r.in.Close(); r.out.Close(); wg.Wait() })
	return r
}

// TestReorderAndDuplicatesExact: reordering and duplication made by a relay
// are counted exactly, and neither shows up as loss.
func TestReorderAndDuplicatesExact(t *testing.T) {
	ns := newNS(t)
	// The per-CPU backlog is shared with the whole host: if a busy host
	// overflows it during the run (lo rx_dropped moves), a lost frame may be
	// one the relay swapped and the counts cannot be exact; run again.
	for attempt := 1; ; attempt++ {
		loBefore := loRxDropped(t, ns)
		srv, reports := startServer(t, ns, ServerConfig{RcvBuf: 8 << 20})
		rl := startRelay(t, ns, srv.Addr())
		conn := dialIn(t, ns, rl.in.LocalAddr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// A count that ends on a swap boundary, so no frame is held at the end.
		rep, err := RunUDP(ctx, conn, ClientConfig{Rate: 20000, Count: 10000})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		<-reports
		backlog := loRxDropped(t, ns) - loBefore
		checkInvariants(t, rep)
		t.Logf("sent %d received %d lost %d reordered %d duplicates %d; relay swapped %d duplicated %d; lo rx_dropped %d",
			rep.Sent, rep.Received, rep.Lost, rep.Reordered, rep.Duplicates, rl.swaps.Load(), rl.dups.Load(), backlog)
		if backlog > 0 && attempt < 3 {
			continue
		}
		if rep.Lost != 0 || rep.SocketDrops != 0 {
			t.Fatalf("lost %d (socket drops %d, backlog drops %d): the relay path must not lose", rep.Lost, rep.SocketDrops, backlog)
		}
		if rep.Reordered != rl.swaps.Load() || rep.Reordered != 1000 {
			t.Errorf("reordered %d, relay swapped %d (want 1000)", rep.Reordered, rl.swaps.Load())
		}
		if rep.Duplicates != rl.dups.Load() || rep.Duplicates != 1000 {
			t.Errorf("duplicates %d, relay duplicated %d (want 1000)", rep.Duplicates, rl.dups.Load())
		}
		if rep.MaxReorderExtent != 1 {
			t.Errorf("max reorder extent %d, want 1 (adjacent swaps)", rep.MaxReorderExtent)
		}
		return
	}
}

// TestGarbageAtFullRate: while a run goes on, another socket floods the
// receiver with random bytes, truncated frames, frames with a flipped bit,
// frames of a bad version, valid frames of another sender, and valid frames
// of this sender with absurd sequence numbers. The receiver must not crash,
// must classify every datagram exactly once, and the run's accounting must
// stay right.
func TestGarbageAtFullRate(t *testing.T) {
	ns := newNS(t)
	srv, reports := startServer(t, ns, ServerConfig{RcvBuf: 32 << 20})
	conn := dialIn(t, ns, srv.Addr().String())
	garbage := dialIn(t, ns, srv.Addr().String())
	loBefore := loRxDropped(t, ns)
	const sender = 0x5eed
	const perKind = 4000
	var sentInvalid, sentCorrupt, sentForeign, sentForged atomic.Uint64
	// The flood runs inside the run: it starts once the sender has sent data
	// (so the receiver's run exists) and the sender stops when it is over.
	started := make(chan struct{})
	var startOnce sync.Once
	sendCtx, stopSend := context.WithTimeout(context.Background(), 15*time.Second)
	defer stopSend()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { time.Sleep(50 * time.Millisecond); stopSend() }()
		select {
		case <-started:
		case <-sendCtx.Done():
			return
		}
		r := rand.New(rand.NewPCG(3, 4))
		good := frame.Append(nil, &frame.Header{Type: frame.Data, Sender: sender}, make([]byte, 20))
		for i := range 6 * perKind {
			var d []byte
			switch i % 6 {
			case 0: // random bytes
				d = make([]byte, 1+r.IntN(200))
				for j := range d {
					d[j] = byte(r.Uint32())
				}
				d[0] = 'x'
				sentInvalid.Add(1)
			case 1: // truncated frame
				d = good[:r.IntN(len(good)-1)]
				sentInvalid.Add(1)
			case 2: // one flipped bit after the length field (a flipped
				// length is a length mismatch, counted invalid)
				d = append([]byte(nil), good...)
				d[16+r.IntN(len(d)-16)] ^= 1 << r.IntN(8)
				sentCorrupt.Add(1)
			case 3: // bad version
				d = append([]byte(nil), good...)
				d[4] = 7
				sentInvalid.Add(1)
			case 4: // valid frame of another sender
				d = frame.Append(nil, &frame.Header{Type: frame.Data, Sender: sender + 1, Seq: r.Uint64()}, nil)
				sentForeign.Add(1)
			case 5: // this sender, absurd sequence number
				d = frame.Append(nil, &frame.Header{Type: frame.Data, Sender: sender, Seq: 1<<40 + r.Uint64()>>1}, nil)
				sentForged.Add(1)
			}
			garbage.Write(d)
		}
	}()
	rep, err := RunUDP(sendCtx, conn, ClientConfig{Sender: sender, Rate: 200000, Duration: 10 * time.Second,
		Interval: 20 * time.Millisecond, OnInterval: func(SendStats) { startOnce.Do(func() { close(started) }) }})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	<-reports
	checkInvariants(t, rep)
	backlog := loRxDropped(t, ns) - loBefore
	t.Logf("sent %d received %d lost %d socket drops %d lo rx_dropped %d; invalid %d corrupted %d foreign %d out-of-window %d", rep.Sent, rep.Received, rep.Lost, rep.SocketDrops, backlog, rep.Invalid, rep.Corrupted, rep.Foreign, rep.OutOfWindow)
	if rep.Lost > rep.SocketDrops+backlog {
		t.Errorf("lost %d, but the kernel dropped only %d at the socket and %d at the backlog", rep.Lost, rep.SocketDrops, backlog)
	}
	if rep.SocketDrops == 0 && backlog == 0 {
		if rep.Invalid != sentInvalid.Load() || rep.Corrupted != sentCorrupt.Load() || rep.Foreign != sentForeign.Load() || rep.OutOfWindow != sentForged.Load() {
			t.Errorf("invalid %d/%d corrupted %d/%d foreign %d/%d out-of-window %d/%d (got/sent)",
				rep.Invalid, sentInvalid.Load(), rep.Corrupted, sentCorrupt.Load(), rep.Foreign, sentForeign.Load(), rep.OutOfWindow, sentForged.Load())
		}
		if rep.Lost != 0 {
			t.Errorf("lost %d with no socket drops", rep.Lost)
		}
	} else {
		t.Logf("the kernel dropped %d datagrams at the socket and %d at the backlog: per-kind counts checked as upper bounds only", rep.SocketDrops, backlog)
		if rep.Invalid > sentInvalid.Load() || rep.Corrupted > sentCorrupt.Load() || rep.Foreign > sentForeign.Load() || rep.OutOfWindow > sentForged.Load() {
			t.Errorf("more bad frames counted than sent: %+v", rep)
		}
	}
	if rep.Invalid+rep.Corrupted+rep.Foreign+rep.OutOfWindow == 0 {
		t.Error("no garbage reached the receiver during the run")
	}
}

// TestSenderQdiscLoss: client and server in two namespaces joined by a veth
// pair; a token bucket (tbf) on the sender's side, a little slower than the
// probe, drops what its short queue cannot hold. The receiver
// cannot see that loss in its counters; the client's own counters must
// explain it at the qdisc stage on the sender, and the count must equal
// tc's: lost data frames + lost Hello and Fin copies = qdisc drops.
func TestSenderQdiscLoss(t *testing.T) {
	a, b := newNS(t), newNS(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs tc to install netem")
	}
	n := nsSeq.Load()
	va, vb := fmt.Sprintf("ndpa%d", n), fmt.Sprintf("ndpb%d", n)
	ipA, ipB := fmt.Sprintf("10.231.%d.1", n%250), fmt.Sprintf("10.231.%d.2", n%250)
	// Only the probe may meet the tbf: no IPv6 autoconfiguration packets
	// (per-namespace sysctls of namespaces this test owns) and no ARP (a
	// permanent neighbour entry), or tc's drop count would include them.
	for _, ns := range []string{a, b} {
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	sh(t, "ip", "-n", a, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b)
	sh(t, "ip", "-n", a, "addr", "add", ipA+"/24", "dev", va)
	sh(t, "ip", "-n", b, "addr", "add", ipB+"/24", "dev", vb)
	sh(t, "ip", "-n", a, "link", "set", va, "up")
	sh(t, "ip", "-n", b, "link", "set", vb, "up")
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(sh(t, "ip", "-n", b, "-j", "link", "show", vb)), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v", vb, err)
	}
	sh(t, "ip", "-n", a, "neigh", "replace", ipB, "lladdr", links[0].Address, "dev", va, "nud", "permanent")
	// 30k frames/s of 106 bytes on the wire is 25.4 Mbit/s.
	sh(t, "tc", "-n", a, "qdisc", "add", "dev", va, "root", "tbf", "rate", "24mbit", "burst", "4kb", "limit", "8kb")

	cfg := ServerConfig{RcvBuf: 8 << 20, Once: true, Collect: nsCollect(b)}
	var srv *UDPServer
	inNS(t, b, func() (err error) {
		srv, err = ListenUDP(ipB+":0", cfg)
		return err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })

	conn := dialIn(t, a, srv.Addr().String())
	before := qdiscDrops(t, a, va)
	rep, err := RunUDP(ctx, conn, ClientConfig{Rate: 30000, Duration: time.Second, Collect: nsCollect(a)})
	if err != nil {
		t.Fatal(err)
	}
	drops := qdiscDrops(t, a, va) - before
	checkInvariants(t, rep)
	t.Logf("sent %d lost %d (%.2f%%), hello missed %d, fin missed %d; tc tbf drops %d; attribution %+v",
		rep.Sent, rep.Lost, rep.LossPercent, rep.HelloMissed, rep.FinMissed, drops, rep.Attribution)
	if rep.Lost+rep.HelloMissed+rep.FinMissed != drops {
		t.Errorf("lost %d + hello missed %d + fin missed %d != tbf drops %d", rep.Lost, rep.HelloMissed, rep.FinMissed, drops)
	}
	if rep.Lost == 0 {
		t.Fatal("tbf dropped nothing: the test proves nothing")
	}
	var q uint64
	for _, s := range rep.Attribution.Stages {
		if s.Stage == stage.Qdisc && s.Side == "sender" {
			q = s.Frames
		}
	}
	if q != rep.Lost || rep.Attribution.Unaccounted != 0 {
		t.Errorf("qdisc on the sender explains %d of %d, unaccounted %d", q, rep.Lost, rep.Attribution.Unaccounted)
	}
}

// qdiscDrops is the drop count of the root qdisc of dev in ns, from tc -s.
func qdiscDrops(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	out := sh(t, "tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev)
	var qs []struct {
		Kind  string `json:"kind"`
		Root  bool   `json:"root"`
		Drops uint64 `json:"drops"`
	}
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatalf("tc -s -j: %v\n%s", err, out)
	}
	for _, q := range qs {
		if q.Kind == "tbf" {
			return q.Drops
		}
	}
	t.Fatalf("no tbf qdisc on %s:\n%s", dev, out)
	return 0
}
