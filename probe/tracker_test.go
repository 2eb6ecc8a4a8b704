package probe

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/stage"
)

func TestTracker(t *testing.T) {
	tests := []struct {
		name    string
		window  int
		seqs    []uint64
		results []Result
		sent    uint64 // Finish(sent) when > 0
		want    TrackerCounts
		pending uint64 // before Finish
	}{
		{
			name: "in order", window: 64, seqs: []uint64{0, 1, 2, 3}, sent: 4,
			results: []Result{InOrder, InOrder, InOrder, InOrder},
			want:    TrackerCounts{Received: 4},
		},
		{
			name: "gap then late arrival within window is reordered, not lost", window: 64,
			seqs: []uint64{0, 2, 3, 1}, sent: 4,
			results: []Result{InOrder, InOrder, InOrder, Reordered},
			want:    TrackerCounts{Received: 4, Reordered: 1, MaxReorderExtent: 2},
		},
		{
			name: "gap stays pending until finish, then lost", window: 64,
			seqs: []uint64{0, 3}, pending: 2, sent: 4,
			results: []Result{InOrder, InOrder},
			want:    TrackerCounts{Received: 2, Lost: 2},
		},
		{
			name: "tail loss counted at finish", window: 64,
			seqs: []uint64{0, 1}, sent: 10,
			results: []Result{InOrder, InOrder},
			want:    TrackerCounts{Received: 2, Lost: 8},
		},
		{
			name: "duplicates never change loss", window: 64,
			seqs: []uint64{0, 0, 2, 2, 2}, sent: 3, pending: 1,
			results: []Result{InOrder, Duplicate, InOrder, Duplicate, Duplicate},
			want:    TrackerCounts{Received: 2, Lost: 1, Duplicates: 3},
		},
		{
			name: "duplicate of a reordered frame", window: 64,
			seqs: []uint64{1, 0, 0}, sent: 2,
			results: []Result{InOrder, Reordered, Duplicate},
			want:    TrackerCounts{Received: 2, Reordered: 1, Duplicates: 1, MaxReorderExtent: 1},
		},
		{
			name: "frame falling out of the window is lost; its late copy is late", window: 64,
			seqs: []uint64{1, 64, 65, 0}, sent: 66, pending: 62,
			results: []Result{InOrder, InOrder, InOrder, Late},
			want:    TrackerCounts{Received: 3, Lost: 63, Late: 1},
		},
		{
			name: "forged jump is out of window, not loss", window: 64,
			seqs: []uint64{0, 1 << 40, 1, 2}, sent: 3,
			results: []Result{InOrder, OutOfWindow, InOrder, InOrder},
			want:    TrackerCounts{Received: 3, OutOfWindow: 1},
		},
		{
			name: "a real jump is confirmed by its successor", window: 64,
			seqs: []uint64{0, 1000, 1001, 1002}, sent: 1003, pending: 61,
			results: []Result{InOrder, OutOfWindow, InOrder, InOrder},
			want:    TrackerCounts{Received: 4, Lost: 999},
		},
		{
			name: "frames beyond what the sender sent are out of window", window: 64,
			seqs: []uint64{0, 1, 5}, sent: 2, pending: 3,
			results: []Result{InOrder, InOrder, InOrder},
			want:    TrackerCounts{Received: 2, OutOfWindow: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(tt.window)
			var got []Result
			for _, s := range tt.seqs {
				got = append(got, tr.Add(s))
			}
			if diff := cmp.Diff(tt.results, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if p := tr.Pending(); p != tt.pending {
				t.Errorf("pending = %d, want %d", p, tt.pending)
			}
			tr.Finish(tt.sent)
			if diff := cmp.Diff(tt.want, tr.Counts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if c := tr.Counts; c.Received+c.Lost != tt.sent {
				t.Errorf("received %d + lost %d != sent %d", c.Received, c.Lost, tt.sent)
			}
		})
	}
}

// TestTrackerRandom checks the invariants on a long stream with random loss,
// reordering and duplication, against a model that knows what it did.
func TestTrackerRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	tr := NewTracker(1024)
	var lost, dups, reord uint64
	var held []uint64
	var highest uint64
	var seen = map[uint64]bool{}
	emit := func(s uint64) {
		res := tr.Add(s)
		switch {
		case seen[s]:
			if res != Duplicate {
				t.Fatalf("seq %d: %v, want duplicate", s, res)
			}
			dups++
		case len(seen) > 0 && s < highest:
			if res != Reordered {
				t.Fatalf("seq %d: %v, want reordered", s, res)
			}
			reord++
		}
		if s > highest || len(seen) == 0 {
			highest = s
		}
		seen[s] = true
		p := tr.Pending()
		c := tr.Counts
		if c.Received+c.Lost+p != tr.Next() {
			t.Fatalf("received %d + lost %d + pending %d != next %d", c.Received, c.Lost, p, tr.Next())
		}
	}
	for s := uint64(0); s < n; s++ {
		switch x := r.IntN(1000); {
		case x < 10:
			lost++
		case x < 20:
			held = append(held, s) // delivered a little later: reordered
		case x < 25:
			emit(s)
			emit(s)
		default:
			emit(s)
		}
		if len(held) > 0 && r.IntN(4) == 0 {
			emit(held[0])
			held = held[1:]
		}
	}
	for _, s := range held {
		emit(s)
	}
	tr.Finish(n)
	want := TrackerCounts{Received: n - lost, Lost: lost, Duplicates: dups, Reordered: reord}
	got := tr.Counts
	got.MaxReorderExtent = 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := uint64(1); i <= 100000; i++ {
		h.Record(i * 1000) // 1 µs .. 100 ms, uniform
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000 * 1000
		got := float64(h.Quantile(q))
		if got < want*0.96 || got > want*1.04 {
			t.Errorf("q%v = %v, want %v ±4%%", q, got, want)
		}
	}
	if h.Max() != 100000*1000 || h.Quantile(1) != 100000*1000 {
		t.Errorf("max = %d, q1 = %d", h.Max(), h.Quantile(1))
	}
	var e Histogram
	if e.Quantile(0.5) != 0 || (e.Summary() != Summary{}) {
		t.Error("empty histogram must summarise to zero")
	}
	for v := uint64(0); v < 1<<20; v = v*3 + 1 {
		if m := bucketMid(bucketOf(v)); float64(m) < float64(v)*0.96 || float64(m) > float64(v)*1.04+1 {
			t.Errorf("bucket of %d represents %d", v, m)
		}
	}
	h.Merge(&e)
	e.Merge(&h)
	if e.Summary() != h.Summary() {
		t.Error("merge into empty must copy")
	}
	_ = time.Second
}

func TestRxqOvfl(t *testing.T) {
	// A real control message layout for SO_RXQ_OVFL on amd64: cmsghdr
	// {len=20, level=SOL_SOCKET(1), type=SO_RXQ_OVFL(40)} then a u32.
	oob := []byte{20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0}
	if v, ok := rxqOvfl(oob); !ok || v != 263 {
		t.Errorf("rxqOvfl = %d, %v; want 263, true", v, ok)
	}
	for _, bad := range [][]byte{nil, oob[:10], {200, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0}} {
		if _, ok := rxqOvfl(bad); ok {
			t.Errorf("rxqOvfl(%v) found a value", bad)
		}
	}
}

var udp4 = Traffic{UDP: true}

func TestAttribute(t *testing.T) {
	delta := &counters.Snapshot{Counters: []counters.Counter{
		{Source: counters.ProcNetSNMP, Field: "Udp:RcvbufErrors", Value: 50, Stage: stage.SocketRcvbuf},
		{Source: counters.NetlinkNftables, Object: "inet t in handle 3", Field: "packets", Value: 30, Stage: stage.Netfilter},
		{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Value: 5, Stage: stage.Softirq, HostWide: true},
		{Source: counters.ProcNetSoftnetStat, Object: "cpu1", Field: "dropped", Value: 2, Stage: stage.Softirq, HostWide: true},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:ListenDrops", Value: 9, Stage: stage.TCPListen},
		{Source: counters.ProcNetSNMP, Field: "Udp:InDatagrams", Value: 1000},
		// Not evidence for a UDP/IPv4 probe: IPv6 and TCP counters, and a
		// qdisc's overlimits, which are not drops.
		{Source: counters.ProcNetSNMP6, Field: "Ip6:InNoRoutes", Value: 3, Stage: stage.IP},
		{Source: counters.ProcNetNetstat, Field: "TcpExt:TCPBacklogDrop", Value: 4, Stage: stage.SocketRcvbuf},
		{Source: counters.NetlinkQdisc, Object: "eth0 tbf 1:", Field: "overlimits", Value: 99, Stage: stage.Qdisc},
		// A softirq budget run out is a near-drop, not a lost frame.
		{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "time_squeeze", Value: 1, Stage: stage.Softirq, HostWide: true},
	}}
	got := Attribute(100, 40, 1, delta, udp4)
	want := Attribution{Lost: 100, Unaccounted: 25, Stages: []StageLoss{
		{Stage: stage.SocketRcvbuf, Frames: 40, Exact: true, Evidence: []Evidence{
			{Source: SocketDropsSource, Field: "sk_drops", Delta: 40},
			{Source: counters.ProcNetSNMP, Field: "Udp:RcvbufErrors", Delta: 50},
		}},
		{Stage: stage.Softirq, Frames: 5, Evidence: []Evidence{
			{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Delta: 5},
			{Source: counters.ProcNetSoftnetStat, Object: "cpu1", Field: "dropped", Delta: 2},
		}},
		{Stage: stage.Netfilter, Frames: 30, Evidence: []Evidence{
			{Source: counters.NetlinkNftables, Object: "inet t in handle 3", Field: "packets", Delta: 30},
		}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Counters never attribute more than was lost, and a namespace
	// counter (the nft rule) is preferred to a host-wide one (softnet_stat,
	// which also counts other traffic) although it comes later on the path.
	got = Attribute(3, 0, 1, delta, udp4)
	if got.Unaccounted != 0 || len(got.Stages) != 1 || got.Stages[0].Frames != 3 || got.Stages[0].Stage != stage.Netfilter {
		t.Errorf("capped attribution = %+v", got)
	}
	if got := Attribute(0, 0, 1, nil, udp4); got.Unaccounted != 0 || got.Stages == nil || len(got.Stages) != 0 {
		t.Errorf("no loss = %+v", got)
	}
	// Evidence is capped so a report fits in a datagram.
	many := &counters.Snapshot{}
	for i := range 20 {
		many.Add(counters.Counter{Source: counters.ProcNetSoftnetStat, Object: fmt.Sprint("cpu", i), Field: "dropped", Value: uint64(i + 1), Stage: stage.Softirq, HostWide: true})
	}
	got = Attribute(5, 0, 1, many, udp4)
	if len(got.Stages) != 1 || len(got.Stages[0].Evidence) != maxEvidence || got.Stages[0].MoreEvidence != 20-maxEvidence || got.Stages[0].Evidence[0].Delta != 20 {
		t.Errorf("capped evidence = %+v", got)
	}
	// Sender side: transmit stages only, qdisc before tx-socket (the kernel
	// counts a qdisc drop as Udp:SndbufErrors too).
	tx := &counters.Snapshot{Counters: []counters.Counter{
		{Source: counters.ProcNetSNMP, Field: "Udp:SndbufErrors", Value: 7, Stage: stage.TxSocket},
		{Source: counters.NetlinkQdisc, Object: "veth0 tbf 1:", Field: "drops", Value: 7, Stage: stage.Qdisc},
		{Source: counters.ProcNetSoftnetStat, Object: "cpu0", Field: "dropped", Value: 5, Stage: stage.Softirq, HostWide: true},
	}}
	got = AttributeSender(Attribution{Lost: 9, Unaccounted: 9, Stages: []StageLoss{}}, tx, udp4)
	if len(got.Stages) != 2 || got.Stages[0].Stage != stage.Qdisc || got.Stages[0].Frames != 7 || got.Stages[0].Side != "sender" ||
		got.Stages[1].Stage != stage.TxSocket || got.Stages[1].Frames != 2 || got.Unaccounted != 0 {
		t.Errorf("sender attribution = %+v", got)
	}
	// With UDP_GRO a drop may be a whole coalesced buffer: an upper bound.
	got = Attribute(640, 10, 64, nil, udp4)
	if got.Unaccounted != 0 || len(got.Stages) != 1 || got.Stages[0].Frames != 640 || got.Stages[0].Exact {
		t.Errorf("gro attribution = %+v", got)
	}
}
