package sockets

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/internal/netns"
)

// ssCounts counts sockets per "family/proto/STATE" from ss -H output of one
// family and protocol.
func ssCounts(into map[string]int, family, proto, text string) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || strings.HasPrefix(line, "\t") {
			continue
		}
		into[family+"/"+proto+"/"+f[0]]++
	}
}

func sumCounts(s *Summary) map[string]int {
	m := map[string]int{}
	for _, c := range s.Counts {
		m[c.Family+"/"+c.Protocol+"/"+c.State.String()] = c.Count
	}
	return m
}

// ssSnapshot is what ss says about the scenario's namespace.
type ssSnapshot struct {
	counts    map[string]int
	listeners map[string][3]int // local -> queued, backlog, drops
	udpDrops  map[string]int    // local -> drops
	twClient  map[string]int    // remote -> TIME_WAIT whose local port is not listening
	twServer  map[string]int    // local port -> TIME_WAIT on a listening port
}

func takeSS(t *testing.T, ns string) ssSnapshot {
	t.Helper()
	s := ssSnapshot{counts: map[string]int{}, listeners: map[string][3]int{}, udpDrops: map[string]int{},
		twClient: map[string]int{}, twServer: map[string]int{}}
	for _, fam := range []struct{ flag, name string }{{"-4", "ipv4"}, {"-6", "ipv6"}} {
		ssCounts(s.counts, fam.name, "tcp", ssIn(t, ns, "-Htan", fam.flag))
		ssCounts(s.counts, fam.name, "udp", ssIn(t, ns, "-Huan", fam.flag))
	}
	listening := map[string]bool{}
	recs := ssRecordsOf(ssIn(t, ns, "-Hltnm"))
	for _, r := range recs {
		f := strings.Fields(r)
		listening[port(f[3])] = true
		s.listeners[f[3]] = [3]int{atoi(f[1]), atoi(f[2]), skmemDrops(r)}
	}
	for _, r := range ssRecordsOf(ssIn(t, ns, "-Huanm")) {
		f := strings.Fields(r)
		if d := skmemDrops(r); d > 0 {
			s.udpDrops[f[3]] = d
		}
	}
	for _, line := range strings.Split(ssIn(t, ns, "-Htan", "state", "time-wait"), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		// With a state filter ss leaves the state column out.
		local, remote := f[2], f[3]
		if listening[port(local)] {
			s.twServer[port(local)]++
		} else {
			s.twClient[remote]++
		}
	}
	return s
}

func ssRecordsOf(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "\t") {
			if len(out) > 0 {
				out[len(out)-1] += " " + strings.TrimSpace(line)
			}
			continue
		}
		if strings.TrimSpace(line) != "" {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// skmemDrops reads the d field of skmem:(…,dN).
func skmemDrops(rec string) int {
	i := strings.Index(rec, ",d")
	if i < 0 {
		return -1
	}
	rest := rec[i+2:]
	return atoi(rest[:strings.IndexByte(rest, ')')])
}

// summaryView puts a Summary in the same shape as ssSnapshot.
func summaryView(s *Summary) ssSnapshot {
	v := ssSnapshot{counts: sumCounts(s), listeners: map[string][3]int{}, udpDrops: map[string]int{},
		twClient: map[string]int{}, twServer: map[string]int{}}
	for _, l := range s.Listeners {
		v.listeners[ssAddr(l.Local)] = [3]int{int(l.Queued), int(l.Backlog), int(l.Drops)}
	}
	for _, p := range s.Pressure {
		if p.Protocol == "udp" && p.Drops > 0 {
			v.udpDrops[ssAddr(p.Local)] = int(p.Drops)
		}
	}
	for _, d := range s.Destinations {
		if d.TimeWait > 0 {
			v.twClient[ssAddr(d.Remote)] = d.TimeWait
		}
	}
	for _, p := range s.ServerTimeWait {
		v.twServer[fmt.Sprint(p.Port)] = p.Count
	}
	return v
}

// compareWithSS reads ss, then netdrop, then ss again. Sockets keep
// moving while the three reads run: the SYN-SENT clients of the full
// listener retransmit every second and each retransmission is a listener
// drop. It retries a few times for two ss readings that agree and then
// compares exactly; if they never agree, every value netdrop read must lie
// between what ss saw before and after, and values that did not move must
// still be equal.
func compareWithSS(t *testing.T, ns string, opts Options) *Summary {
	t.Helper()
	for try := 0; ; try++ {
		before := takeSS(t, ns)
		sum, err := Summarize(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		after := takeSS(t, ns)
		opt := cmp.AllowUnexported(ssSnapshot{})
		if cmp.Equal(before, after, opt) {
			if diff := cmp.Diff(after, summaryView(sum), opt); diff != "" {
				t.Errorf("netdrop differs from ss (-ss +netdrop):\n%s", diff)
			}
			return sum
		}
		if try < 3 {
			continue
		}
		t.Logf("ss moved between its two reads in %d tries: netdrop must lie between them:\n%s", try+1, cmp.Diff(before, after, opt))
		if out := outsideSS(before, after, summaryView(sum)); len(out) > 0 {
			t.Errorf("netdrop outside what ss saw before and after:\n%s", strings.Join(out, "\n"))
		}
		return sum
	}
}

// flat lists every number of a snapshot under one key; a listener also
// counts as present (1), so a missing one shows as 0.
func (s ssSnapshot) flat() map[string]int {
	m := map[string]int{}
	for k, v := range s.counts {
		m["sockets "+k] = v
	}
	for k, v := range s.listeners {
		m["listener "+k] = 1
		m["listener "+k+" queued"], m["listener "+k+" backlog"], m["listener "+k+" drops"] = v[0], v[1], v[2]
	}
	for k, v := range s.udpDrops {
		m["udp drops "+k] = v
	}
	for k, v := range s.twClient {
		m["client time-wait to "+k] = v
	}
	for k, v := range s.twServer {
		m["server time-wait on port "+k] = v
	}
	return m
}

// outsideSS names every value of got that is not between before and after
// (an absent value is 0), sorted.
func outsideSS(before, after, got ssSnapshot) []string {
	b, a, g := before.flat(), after.flat(), got.flat()
	keys := map[string]bool{}
	for _, m := range []map[string]int{b, a, g} {
		for k := range m {
			keys[k] = true
		}
	}
	var out []string
	for k := range keys {
		lo, hi := min(b[k], a[k]), max(b[k], a[k])
		if g[k] < lo || g[k] > hi {
			out = append(out, fmt.Sprintf("%s: ss %d then %d, netdrop %d", k, b[k], a[k], g[k]))
		}
	}
	sort.Strings(out)
	return out
}

func TestSummarizeMatchesSS(t *testing.T) {
	sc := buildScenario(t)
	sum := compareWithSS(t, sc.ns, Options{Netns: netns.Named(sc.ns), Owners: true, Top: -1})

	// The arranged state, independently of ss.
	if got := sum.TimeWait; got.Server != sc.serverTW4 || got.Client != sc.clientTW4+sc.clientTW6 {
		t.Errorf("time-wait sides = %+v, arranged server %d client %d", got, sc.serverTW4, sc.clientTW4+sc.clientTW6)
	}
	if got := sumCounts(sum)["ipv4/tcp/SYN-RECV"]; got != sc.synRecv {
		t.Errorf("SYN-RECV request sockets: %d, arranged %d", got, sc.synRecv)
	}
	var q *Listener
	for i := range sum.Listeners {
		if sum.Listeners[i].Local.Port() == scnQueuePrt {
			q = &sum.Listeners[i]
		}
	}
	if q == nil {
		t.Fatal("backlog-2 listener not reported")
	}
	if q.Queued != uint32(sc.backlog+1) || q.Backlog != uint32(sc.backlog) || !q.Full || q.Drops == 0 {
		t.Errorf("listener %+v: want %d queued of backlog %d, full, with drops", *q, sc.backlog+1, sc.backlog)
	}
	if len(q.Processes) != 1 || q.Processes[0].PID != os.Getpid() {
		t.Errorf("listener owner = %v, want this test (pid %d)", q.Processes, os.Getpid())
	}
	if sum.Listeners[0].Local.Port() != scnQueuePrt {
		t.Errorf("the full listener should rank first, got %v", sum.Listeners[0].Local)
	}
	udp := 0
	for _, p := range sum.Pressure {
		if p.Protocol == "udp" && p.Drops > 0 {
			udp++
			if len(p.Processes) == 0 || p.Processes[0].PID != os.Getpid() {
				t.Errorf("udp sink %v owner = %v, want pid %d", p.Local, p.Processes, os.Getpid())
			}
			if p.Fill < 1 {
				t.Errorf("udp sink %v fill %.2f, want full", p.Local, p.Fill)
			}
		}
	}
	if udp != 2 {
		t.Errorf("want the v4 and v6 UDP sinks with drops, got %d: %+v", udp, sum.Pressure)
	}
	got := map[string]Destination{}
	for _, d := range sum.Destinations {
		got[d.Remote.String()] = d
	}
	for _, w := range []struct {
		remote          string
		tw, estab, sock int
		reuse           TwReuse
	}{
		// tcp_tw_reuse=2 (this namespace's default) covers loopback only.
		{"127.0.0.1:8080", sc.clientTW4, 2, sc.clientTW4 + 2, TwReuseActive},
		{"[fd00::1]:8443", sc.clientTW6, 2, sc.clientTW6 + 2, TwReuseWouldHelp},
		// The full listener: 3 handshakes done, 2 clients in SYN_SENT.
		{"127.0.0.1:9090", 0, sc.backlog + 1, sc.connects, TwReuseNone},
	} {
		d, ok := got[w.remote]
		if !ok {
			t.Errorf("destination %s missing from %+v", w.remote, sum.Destinations)
			continue
		}
		if d.TimeWait != w.tw || d.Established != w.estab || d.Sockets != w.sock || d.TwReuse != w.reuse || d.Sources != 1 {
			t.Errorf("destination %s = %+v, want time-wait %d established %d sockets %d tw_reuse %q from 1 source",
				w.remote, d, w.tw, w.estab, w.sock, w.reuse)
		}
		if d.Severity != "" || d.Share <= 0 || d.Share > 0.01 {
			t.Errorf("destination %s share %.5f severity %q, want a small unflagged share", w.remote, d.Share, d.Severity)
		}
	}
}

func TestSummarizeFilters(t *testing.T) {
	sc := buildScenario(t)
	t.Run("state", func(t *testing.T) {
		states, err := ParseStates("time-wait")
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Summarize(context.Background(), Options{Netns: netns.Named(sc.ns), States: states, Top: -1})
		if err != nil {
			t.Fatal(err)
		}
		ref := takeSS(t, sc.ns)
		want := map[string]int{}
		for _, fam := range []string{"ipv4", "ipv6"} {
			if n := ref.counts[fam+"/tcp/TIME-WAIT"]; n > 0 {
				want[fam+"/tcp/TIME-WAIT"] = n
			}
		}
		got := summaryView(sum)
		if diff := cmp.Diff(want, got.counts); diff != "" {
			t.Errorf("state filter counts (-ss +netdrop):\n%s", diff)
		}
		if diff := cmp.Diff(ref.twClient, got.twClient); diff != "" {
			t.Errorf("client TIME_WAIT per destination (-ss +netdrop):\n%s", diff)
		}
		if diff := cmp.Diff(ref.twServer, got.twServer); diff != "" {
			t.Errorf("server TIME_WAIT per port (-ss +netdrop):\n%s", diff)
		}
		if len(sum.Listeners) != 0 || len(sum.Pressure) != 0 {
			t.Errorf("listeners %v and pressure %v outside the state filter", sum.Listeners, sum.Pressure)
		}
		if want := sc.clientTW4 + sc.clientTW6 + sc.serverTW4; sum.Total != want {
			t.Errorf("total %d, want %d TIME_WAIT", sum.Total, want)
		}
	})
	t.Run("port", func(t *testing.T) {
		sum, err := Summarize(context.Background(), Options{Netns: netns.Named(sc.ns), Port: scnQueuePrt, Top: -1})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{}
		for _, fam := range []string{"-4", "-6"} {
			ssCounts(want, map[string]string{"-4": "ipv4", "-6": "ipv6"}[fam], "tcp",
				ssIn(t, sc.ns, "-Htan", fam, "( sport = :9090 or dport = :9090 )"))
		}
		if diff := cmp.Diff(want, sumCounts(sum)); diff != "" {
			t.Errorf("port filter (-ss +netdrop):\n%s", diff)
		}
	})
	t.Run("process", func(t *testing.T) {
		sum, err := Summarize(context.Background(), Options{Netns: netns.Named(sc.ns), Process: ProcessFilter{PID: os.Getpid()}, Top: -1, Owners: true})
		if err != nil {
			t.Fatal(err)
		}
		// ss -p names this test as the owner of every socket it holds;
		// TIME_WAIT and connections still in an accept queue have no
		// owner.
		want := map[string]int{}
		mine := fmt.Sprintf("pid=%d,", os.Getpid())
		for _, fam := range []string{"-4", "-6"} {
			name := map[string]string{"-4": "ipv4", "-6": "ipv6"}[fam]
			for _, proto := range []string{"tcp", "udp"} {
				var owned []string
				for _, line := range strings.Split(ssIn(t, sc.ns, "-H"+proto[:1]+"anp", fam), "\n") {
					if strings.Contains(line, mine) {
						owned = append(owned, line)
					}
				}
				ssCounts(want, name, proto, strings.Join(owned, "\n"))
			}
		}
		if diff := cmp.Diff(want, sumCounts(sum)); diff != "" {
			t.Errorf("process filter (-ss +netdrop):\n%s", diff)
		}
		sum, err = Summarize(context.Background(), Options{Netns: netns.Named(sc.ns), Process: ProcessFilter{Comm: "no-such-comm"}})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Total != 0 {
			t.Errorf("a process that does not exist owns %d sockets", sum.Total)
		}
	})
}

// TestPortShareInNamespace narrows the ephemeral range inside a namespace
// to 20 ports and fills 19 of them toward one destination and 11 toward
// another with client-side TIME_WAIT: the namespace's own sysctls must be
// read (not the host's) and the thresholds applied, and the per-destination
// counts must equal ss's.
func TestPortShareInNamespace(t *testing.T) {
	needRoot(t)
	ns := newNetns(t)
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40019")
	// Without reuse every connect takes a fresh port; the namespace's
	// value must show in the result.
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=0")
	srv := startServer(t, ns, "tcp4", "0.0.0.0:8080")
	const toOne, toTwo = 19, 11
	clientCloses(t, ns, "tcp4", "127.0.0.1:8080", srv, toOne)
	clientCloses(t, ns, "tcp4", "127.0.0.2:8080", srv, toTwo)
	waitTCPStates(t, ns, fmt.Sprintf("%d TIME-WAIT and no closing states", toOne+toTwo), func(n map[string]int) bool {
		return n["TIME-WAIT"] == toOne+toTwo && n["FIN-WAIT-1"]+n["FIN-WAIT-2"]+n["CLOSE-WAIT"]+n["LAST-ACK"]+n["CLOSING"] == 0
	})

	sum, err := Summarize(context.Background(), Options{Netns: netns.Named(ns), Top: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Settings{PortLow: 40000, PortHigh: 40019, TwReuse: 0, Timestamps: 1}); sum.Settings != want {
		t.Errorf("settings %+v, want the namespace's %+v", sum.Settings, want)
	}
	ref := takeSS(t, ns)
	if diff := cmp.Diff(ref.twClient, summaryView(sum).twClient); diff != "" {
		t.Errorf("client TIME_WAIT per destination (-ss +netdrop):\n%s", diff)
	}
	type row struct {
		Remote   string
		TimeWait int
		Share    float64
		Severity string
		TwReuse  TwReuse
	}
	var got []row
	for _, d := range sum.Destinations {
		got = append(got, row{d.Remote.String(), d.TimeWait, d.Share, d.Severity, d.TwReuse})
	}
	want := []row{
		{"127.0.0.1:8080", toOne, 0.95, "critical", TwReuseWouldHelp},
		{"127.0.0.2:8080", toTwo, 0.55, "warning", TwReuseWouldHelp},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("destinations (-want +got):\n%s", diff)
	}
}

// TestOutsideSS checks the bounded comparison itself: equal readings leave
// no room, moving ones allow any value between them, in either direction.
func TestOutsideSS(t *testing.T) {
	snap := func(drops, tw int) ssSnapshot {
		s := ssSnapshot{counts: map[string]int{"ipv4/tcp/TIME-WAIT": tw}, listeners: map[string][3]int{"127.0.0.1:9090": {3, 2, drops}},
			udpDrops: map[string]int{}, twClient: map[string]int{}, twServer: map[string]int{}}
		return s
	}
	for _, tc := range []struct {
		name               string
		before, after, got ssSnapshot
		want               []string
	}{
		{"still and equal", snap(4, 12), snap(4, 12), snap(4, 12), nil},
		{"still and different", snap(4, 12), snap(4, 12), snap(4, 11), []string{"sockets ipv4/tcp/TIME-WAIT: ss 12 then 12, netdrop 11"}},
		{"growing drops, read in between", snap(4, 12), snap(6, 12), snap(5, 12), nil},
		{"expiring time-wait, read in between", snap(4, 12), snap(4, 10), snap(4, 11), nil},
		{"read beyond the later ss", snap(4, 12), snap(6, 12), snap(7, 12), []string{"listener 127.0.0.1:9090 drops: ss 4 then 6, netdrop 7"}},
		{"listener missing", snap(4, 12), snap(4, 12), ssSnapshot{counts: map[string]int{"ipv4/tcp/TIME-WAIT": 12}}, []string{
			"listener 127.0.0.1:9090 backlog: ss 2 then 2, netdrop 0",
			"listener 127.0.0.1:9090 drops: ss 4 then 4, netdrop 0",
			"listener 127.0.0.1:9090 queued: ss 3 then 3, netdrop 0",
			"listener 127.0.0.1:9090: ss 1 then 1, netdrop 0",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, outsideSS(tc.before, tc.after, tc.got)); diff != "" {
				t.Errorf("outsideSS (-want +got):\n%s", diff)
			}
		})
	}
}
