package probe

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

var testFlow = FlowKey{Src: netip.MustParseAddrPort("10.9.1.1:40000"), Dst: netip.MustParseAddrPort("10.9.2.2:4790")}

// row is a traced row with the given flows (src>dst, count).
func row(reason, loc string, st stage.ID, flows ...droptrace.Flow) droptrace.Row {
	r := droptrace.Row{Reason: reason, Location: loc, Stage: st, Netns: 4026532001, Protocol: "ipv4", L4: "udp", Flows: flows}
	for _, f := range flows {
		r.Count += f.Count
	}
	return r
}

func fl(src, dst string, n uint64) droptrace.Flow {
	return droptrace.Flow{Proto: "udp", Src: src, Dst: dst, Count: n}
}

func TestFlowKeyMatches(t *testing.T) {
	wild := FlowKey{Src: testFlow.Src, Dst: netip.MustParseAddrPort("0.0.0.0:4790")}
	for _, tc := range []struct {
		name string
		k    FlowKey
		f    droptrace.Flow
		want bool
	}{
		{"same", testFlow, fl("10.9.1.1:40000", "10.9.2.2:4790", 1), true},
		{"other source port", testFlow, fl("10.9.1.1:40001", "10.9.2.2:4790", 1), false},
		{"reverse direction", testFlow, fl("10.9.2.2:4790", "10.9.1.1:40000", 1), false},
		{"other destination", testFlow, fl("10.9.1.1:40000", "10.9.2.3:4790", 1), false},
		{"tcp", testFlow, droptrace.Flow{Proto: "tcp", Src: "10.9.1.1:40000", Dst: "10.9.2.2:4790"}, false},
		{"wildcard listener", wild, fl("10.9.1.1:40000", "10.9.2.7:4790", 1), true},
		{"wildcard listener, other port", wild, fl("10.9.1.1:40000", "10.9.2.7:4791", 1), false},
		{"mapped address", FlowKey{Src: netip.MustParseAddrPort("[::ffff:10.9.1.1]:40000"), Dst: testFlow.Dst}, fl("10.9.1.1:40000", "10.9.2.2:4790", 1), true},
		{"unparsable", testFlow, fl("10.9.1.1", "10.9.2.2", 1), false},
	} {
		if got := tc.k.Matches(tc.f); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
	k, err := ParseFlowQuery(testFlow.Query())
	if err != nil || k != testFlow {
		t.Errorf("ParseFlowQuery(Query()) = %v, %v; want %v", k, err, testFlow)
	}
	for _, bad := range []string{"", "tcp,1.2.3.4:1,1.2.3.4:2", "udp,1.2.3.4,1.2.3.4:2", "udp,1.2.3.4:1"} {
		if _, err := ParseFlowQuery(bad); err == nil {
			t.Errorf("ParseFlowQuery(%q) accepted", bad)
		}
	}
}

func TestAttributeTraced(t *testing.T) {
	mine := func(n uint64) droptrace.Flow { return fl("10.9.1.1:40000", "10.9.2.2:4790", n) }
	other := func(n uint64) droptrace.Flow { return fl("10.9.1.9:5000", "10.9.2.2:4790", n) }
	sockRow := func(fs ...droptrace.Flow) droptrace.Row {
		return row("SOCKET_RCVBUFF", "udp_queue_rcv_one_skb+0x437", stage.SocketRcvbuf, fs...)
	}
	nftRow := func(fs ...droptrace.Flow) droptrace.Row {
		return row("NETFILTER_DROP", "nft_do_chain+0x3e8", stage.Netfilter, fs...)
	}
	ringDelta := &counters.Snapshot{Counters: []counters.Counter{{Source: counters.EthtoolStats, Object: "eth0", Field: "rx_fifo_errors", Value: 7, Stage: stage.RxRing, HostWide: true}}}
	type stageRes struct {
		Stage  stage.ID
		Frames uint64
		Exact  bool
	}
	for _, tc := range []struct {
		name                              string
		lost, sockDrops, perDrop, control uint64
		rows                              []droptrace.Row
		delta                             *counters.Snapshot
		want                              []stageRes
		unaccounted                       uint64
	}{
		{name: "socket counter and trace agree", lost: 100, sockDrops: 100, perDrop: 1,
			rows: []droptrace.Row{sockRow(mine(100))}, want: []stageRes{{stage.SocketRcvbuf, 100, true}}},
		{name: "other flows on the port are not ours", lost: 30, sockDrops: 0, perDrop: 1,
			rows: []droptrace.Row{nftRow(mine(30), other(500))}, want: []stageRes{{stage.Netfilter, 30, true}}},
		{name: "two stages", lost: 50, sockDrops: 20, perDrop: 1,
			rows: []droptrace.Row{sockRow(mine(20)), nftRow(mine(30))}, want: []stageRes{{stage.SocketRcvbuf, 20, true}, {stage.Netfilter, 30, true}}},
		{name: "fin copies dropped by the socket are not data", lost: 10, sockDrops: 10, perDrop: 1, control: 2,
			rows: []droptrace.Row{sockRow(mine(12))}, want: []stageRes{{stage.SocketRcvbuf, 10, true}}},
		{name: "the rest is unaccounted, ring counters explain only the untraceable", lost: 40, perDrop: 1,
			rows: []droptrace.Row{nftRow(mine(25))}, delta: ringDelta, want: []stageRes{{stage.Netfilter, 25, true}, {stage.RxRing, 7, false}}, unaccounted: 8},
		{name: "never more than lost", lost: 5, perDrop: 1,
			rows: []droptrace.Row{nftRow(mine(9))}, want: []stageRes{{stage.Netfilter, 5, true}}},
		{name: "GRO: not exact", lost: 64, sockDrops: 1, perDrop: 64,
			rows: []droptrace.Row{sockRow(mine(1))}, want: []stageRes{{stage.SocketRcvbuf, 64, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := AttributeTraced(tc.lost, tc.sockDrops, tc.perDrop, tc.control, droptrace.Snapshot{Rows: tc.rows}, testFlow, tc.delta, Traffic{UDP: true})
			var got []stageRes
			sum := a.Unaccounted
			for _, s := range a.Stages {
				got = append(got, stageRes{s.Stage, s.Frames, s.Exact})
				sum += s.Frames
				if len(s.Evidence) == 0 {
					t.Errorf("stage %s without evidence", s.Stage)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			if a.Unaccounted != tc.unaccounted || sum != tc.lost {
				t.Errorf("unaccounted %d (want %d), stages+unaccounted %d of %d lost", a.Unaccounted, tc.unaccounted, sum, tc.lost)
			}
		})
	}
}

// fakeTracer returns its snapshots in turn.
type fakeTracer struct{ snaps []droptrace.Snapshot }

func (f *fakeTracer) Snapshot() (droptrace.Snapshot, error) {
	if len(f.snaps) == 0 {
		return droptrace.Snapshot{}, errors.New("tracer closed")
	}
	s := f.snaps[0]
	f.snaps = f.snaps[1:]
	return s, nil
}

// fakeHop returns its readings in turn.
type fakeHop struct {
	name  string
	reads []HopReading
	asked []FlowKey
}

func (h *fakeHop) Name() string { return h.name }
func (h *fakeHop) Read(_ context.Context, k FlowKey) (HopReading, error) {
	h.asked = append(h.asked, k)
	if len(h.reads) == 0 {
		return HopReading{}, errors.New("connection refused")
	}
	r := h.reads[0]
	h.reads = h.reads[1:]
	return r, nil
}

func TestAttributeRest(t *testing.T) {
	mine := func(n uint64) droptrace.Flow { return fl("10.9.1.1:40000", "10.9.2.2:4790", n) }
	qdisc := func(n uint64) droptrace.Row {
		return row("QDISC_DROP", "__dev_queue_xmit+0x7e1", stage.Qdisc, mine(n))
	}
	nft := func(n uint64, fs ...droptrace.Flow) droptrace.Row {
		return row("NETFILTER_DROP", "nft_do_chain+0x3e8", stage.Netfilter, fs...)
	}
	type stageRes struct {
		Side, Hop string
		Stage     stage.ID
		Frames    uint64
		Exact     bool
	}
	receiverOnly := Attribution{Lost: 100, Stages: []StageLoss{{Stage: stage.SocketRcvbuf, Frames: 10, Exact: true}}, Unaccounted: 90,
		Places: []Place{{Side: "receiver", Traced: true, Flow: true}}}
	host := &HostID{Boot: "b", Netns: 1}
	for _, tc := range []struct {
		name        string
		rep         Report
		cfg         func() ClientConfig
		want        []stageRes
		unaccounted uint64
		places      []Place
	}{
		{
			name: "sender traced: its qdisc",
			rep:  Report{Version: 2, Attribution: receiverOnly},
			cfg: func() ClientConfig {
				return ClientConfig{Tracer: &fakeTracer{snaps: []droptrace.Snapshot{{Rows: []droptrace.Row{qdisc(5)}}, {Rows: []droptrace.Row{qdisc(65)}}}}}
			},
			want:        []stageRes{{"", "", stage.SocketRcvbuf, 10, true}, {"sender", "", stage.Qdisc, 60, true}},
			unaccounted: 30,
			places:      []Place{{Side: "receiver", Traced: true, Flow: true}, {Side: "sender", Traced: true, Flow: true}},
		},
		{
			name: "a hop traced with flows takes the rest; control copies lost there are not data",
			rep:  Report{Version: 2, Attribution: receiverOnly, FinMissed: 1},
			cfg: func() ClientConfig {
				return ClientConfig{
					Tracer: &fakeTracer{snaps: []droptrace.Snapshot{{}, {}}},
					Via: []Hop{&fakeHop{name: "http://r1:9469", reads: []HopReading{
						{Version: 1, Traced: true, TraceFlows: true},
						{Version: 1, Traced: true, TraceFlows: true, Trace: []droptrace.Row{nft(0, mine(91))}},
					}}},
				}
			},
			want:   []stageRes{{"", "", stage.SocketRcvbuf, 10, true}, {"hop", "http://r1:9469", stage.Netfilter, 90, true}},
			places: []Place{{Side: "receiver", Traced: true, Flow: true}, {Side: "sender", Traced: true, Flow: true}, {Side: "hop", Hop: "http://r1:9469", Traced: true, Flow: true}},
		},
		{
			name: "a hop without flows is an upper bound; a dead hop is said",
			rep:  Report{Version: 2, Attribution: receiverOnly},
			cfg: func() ClientConfig {
				return ClientConfig{Via: []Hop{
					&fakeHop{name: "http://dead:9469"},
					&fakeHop{name: "http://r1:9469", reads: []HopReading{
						{Version: 1, Traced: true, Trace: []droptrace.Row{nft(0, fl("1.1.1.1:1", "2.2.2.2:2", 3))}},
						{Version: 1, Traced: true, Trace: []droptrace.Row{nft(0, fl("1.1.1.1:1", "2.2.2.2:2", 500))}},
					}},
				}}
			},
			want:        []stageRes{{"", "", stage.SocketRcvbuf, 10, true}, {"hop", "http://r1:9469", stage.Netfilter, 90, false}},
			unaccounted: 0,
		},
		{
			name: "same namespace: the sender adds nothing",
			rep:  Report{Version: 2, Attribution: receiverOnly, Host: host},
			cfg: func() ClientConfig {
				return ClientConfig{Host: host, Tracer: &fakeTracer{snaps: []droptrace.Snapshot{{}, {Rows: []droptrace.Row{qdisc(60)}}}}}
			},
			want:        []stageRes{{"", "", stage.SocketRcvbuf, 10, true}},
			unaccounted: 90,
			places:      []Place{{Side: "receiver", Traced: true, Flow: true}, {Side: "sender", Note: "the same namespace as the receiver: its drops are in the receiver's share"}},
		},
		{
			name: "an old server: said so",
			rep:  Report{Attribution: Attribution{Lost: 3, Stages: []StageLoss{}, Unaccounted: 3}},
			cfg:  func() ClientConfig { return ClientConfig{} },
			want: nil, unaccounted: 3,
			places: []Place{
				{Side: "receiver", Note: "the server is an older netdrop (report version 1): its share is from its counters, not traced"},
				{Side: "sender", Note: "not watched (no counters read on the sender)"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg()
			rep := tc.rep
			rep.Attribution.Stages = append([]StageLoss(nil), rep.Attribution.Stages...)
			rep.Attribution.Places = append([]Place(nil), rep.Attribution.Places...)
			w := openClientWindow(context.Background(), cfg, testFlow)
			w.attributeRest(context.Background(), &rep, cfg, testFlow, Traffic{UDP: true})
			a := rep.Attribution
			var got []stageRes
			sum := a.Unaccounted
			for _, s := range a.Stages {
				got = append(got, stageRes{s.Side, s.Hop, s.Stage, s.Frames, s.Exact})
				sum += s.Frames
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("stages (-want +got):\n%s", diff)
			}
			if a.Unaccounted != tc.unaccounted || sum != a.Lost {
				t.Errorf("unaccounted %d (want %d), stages+unaccounted %d of %d lost", a.Unaccounted, tc.unaccounted, sum, a.Lost)
			}
			if tc.places != nil {
				if diff := cmp.Diff(tc.places, a.Places, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("places (-want +got):\n%s", diff)
				}
			}
			for _, v := range cfg.Via {
				if h, ok := v.(*fakeHop); ok && len(h.asked) > 0 && h.asked[0] != testFlow {
					t.Errorf("hop %s asked for %v, want the probe's flow %v", h.name, h.asked[0], testFlow)
				}
			}
		})
	}
}

func TestSplit(t *testing.T) {
	a := Attribution{Lost: 10, Unaccounted: 1, Stages: []StageLoss{
		{Side: "sender", Frames: 2}, {Frames: 3}, {Side: "hop", Hop: "h", Frames: 4},
	}}
	s, r, h, u := a.Split()
	if diff := cmp.Diff([]uint64{2, 3, 4, 1}, []uint64{s, r, h, u}); diff != "" {
		t.Errorf("Split (-want +got):\n%s", diff)
	}
}
