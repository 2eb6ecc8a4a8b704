package top

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixtureReading reads one of the fixture trees (real /proc files: 500
// UDP receive-buffer drops and 30 listen overflows between before and
// later) at time at.
func fixtureReading(t *testing.T, dir string, at time.Time) reading {
	t.Helper()
	snap := counters.Collect(context.Background(), counters.Options{
		FS: counters.NewFS("testdata/" + dir), Sources: []counters.Source{counters.SNMPSource{}},
	})
	snap.Time = at
	if dir == "later" {
		// A source that could not be read, as the help screen lists it.
		snap.Unavailable = append(snap.Unavailable, counters.Unavailable{Source: diagnose.SourceSockDiag, Reason: "no sockets here"})
	}
	return reading{counters: snap}
}

// fixtureSockets is a real sock_diag summary (a listener that dropped 3
// handshakes) and the same listener before it dropped.
func fixtureSockets(t *testing.T) (before, after *sockets.Summary) {
	t.Helper()
	b, err := os.ReadFile("testdata/sockets-summary.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []**sockets.Summary{&before, &after} {
		if err := json.Unmarshal(b, p); err != nil {
			t.Fatal(err)
		}
	}
	before.Listeners[0].Drops = 0
	return before, after
}

// fixtureTrace is what the tracer counts for the fixture's drops: the
// receive-buffer drops in the UDP enqueue, the listen overflows where the
// handshake's child socket is made.
func fixtureTrace() *droptrace.Snapshot {
	return &droptrace.Snapshot{Time: t0.Add(10 * time.Second), Rows: []droptrace.Row{
		{Count: 500, Reason: "SOCKET_RCVBUFF", Location: "__udp_enqueue_schedule_skb+0x1b2", Function: "__udp_enqueue_schedule_skb", Stage: stage.SocketRcvbuf, Protocol: "ipv4", L4: "udp"},
		{Count: 30, Reason: "TCP_LISTEN_OVERFLOW", Location: "tcp_v4_syn_recv_sock+0x3a1", Function: "tcp_v4_syn_recv_sock", Stage: stage.TCPListen, Protocol: "ipv4", L4: "tcp"},
	}}
}

// fixtureSample is the interval between the fixture trees, 10 s long, with
// the tracer's and sock_diag's views.
func fixtureSample(t *testing.T) *Sample {
	t.Helper()
	a, b := fixtureReading(t, "before", t0), fixtureReading(t, "later", t0.Add(10*time.Second))
	a.sockets, b.sockets = fixtureSockets(t)
	a.trace, b.trace = &droptrace.Snapshot{Time: t0}, fixtureTrace()
	return sampleOf(a, b, nil)
}

// TestSampleIsDiagnose: a sample's judgement is diagnose's for the same
// interval and evidence, not a rule set of top's own.
func TestSampleIsDiagnose(t *testing.T) {
	s := fixtureSample(t)
	a, b := fixtureReading(t, "before", t0), fixtureReading(t, "later", t0.Add(10*time.Second))
	sb, sa := fixtureSockets(t)
	tr := fixtureTrace()
	want := diagnose.AnalyzeWith(a.counters, b.counters, 10*time.Second, diagnose.Extra{Sockets: sa, SocketsBefore: sb, Trace: tr})
	if diff := cmp.Diff(want, s.Report); diff != "" {
		t.Errorf("report (-diagnose +top):\n%s", diff)
	}
	if s.Interval != 10*time.Second {
		t.Errorf("interval %s, want 10s", s.Interval)
	}
	moved := map[string]uint64{}
	for _, c := range s.Moved {
		moved[c.Field] = c.Value
	}
	for f, n := range map[string]uint64{"Udp:RcvbufErrors": 500, "TcpExt:ListenOverflows": 30} {
		if moved[f] != n {
			t.Errorf("moved %s = %d, want %d (all: %v)", f, moved[f], n, moved)
		}
	}
	if len(s.Sockets) != 1 || s.Sockets[0].Drops != 3 || !s.Sockets[0].Listener {
		t.Errorf("socket drops %+v, want the listener's 3", s.Sockets)
	}
}

func newFixtureModel(t *testing.T, w, h int) *Model {
	t.Helper()
	m := New(context.Background(), Config{Interval: time.Second, Netns: "web", Trace: true, Sockets: true})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.Update(SampleMsg(fixtureSample(t), nil))
	return m
}

func screen(m *Model) string { return ansi.Strip(m.Render()) }

// row is the stage's row of the path.
func row(t *testing.T, scr string, id stage.ID) string {
	t.Helper()
	for _, l := range strings.Split(scr, "\n") {
		f := strings.Fields(strings.TrimPrefix(l, "▶"))
		if len(f) > 0 && f[0] == string(id) {
			return l
		}
	}
	t.Fatalf("no row for %s in:\n%s", id, scr)
	return ""
}

func TestViewStages(t *testing.T) {
	m := newFixtureModel(t, 140, 60)
	scr := screen(m)
	r := m.shown.last.Report
	for _, sd := range r.Stages {
		l := row(t, scr, sd.Stage)
		f := strings.Fields(strings.TrimPrefix(l, "▶"))
		info, _ := stage.Lookup(sd.Stage)
		// id, title words, rate, total, peak, sparkline
		n := 1 + len(strings.Fields(info.Title))
		got := f[n : n+3]
		want := []string{fmtRate(sd.Rate), fmt.Sprint(sd.Drops), fmtRate(sd.Rate)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s rate/total/peak (-want +got):\n%s\nrow: %q", sd.Stage, diff, l)
		}
	}
	for id, rate := range map[stage.ID]string{stage.SocketRcvbuf: "50", stage.TCPListen: "3.0"} {
		if f := strings.Fields(row(t, scr, id)); !strings.Contains(strings.Join(f, " "), " "+rate+" ") {
			t.Errorf("%s row %q lacks rate %s", id, row(t, scr, id), rate)
		}
	}
	// Every finding is listed, with its severity and title.
	for _, f := range r.Findings {
		if !strings.Contains(scr, f.Title) {
			t.Errorf("finding %q missing from:\n%s", f.Title, scr)
		}
	}
	// Colour is diagnose's severity for the stage.
	raw := m.Render()
	for id, sev := range stageSeverity(r) {
		i := stage.Index(id)
		want := sevStyle(int8(sev), m.shown.points[0].rate[i]).Render(fmt.Sprintf("%9s", fmtRate(m.shown.points[0].rate[i])))
		if !strings.Contains(raw, want) {
			t.Errorf("%s drops/s not coloured as %s: want %q in the row", id, sev, want)
		}
	}
	for _, s := range []string{"netns web", "every 1s", "SOCKET_RCVBUFF", "__udp_enqueue_schedule_skb", "TCP_LISTEN_OVERFLOW", "tcp_v4_syn_recv_sock",
		"SOCKETS BY DROPS", "10.231.1.2:8080", "accept queue 5/4"} {
		if !strings.Contains(scr, s) {
			t.Errorf("screen lacks %q:\n%s", s, scr)
		}
	}
}

// TestViewFits: the screen is exactly the terminal's height and no line
// is wider than it, at every size; a short terminal hides quiet stages,
// never one that drops.
func TestViewFits(t *testing.T) {
	for _, sz := range [][2]int{{80, 24}, {60, 15}, {100, 30}, {140, 60}, {220, 70}, {20, 5}} {
		t.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(t *testing.T) {
			m := newFixtureModel(t, sz[0], sz[1])
			for _, keys := range [][]string{nil, {"n", "enter"}, {"?"}} {
				for _, k := range keys {
					m.Update(key(k))
				}
				lines := strings.Split(m.Render(), "\n")
				if len(lines) != sz[1] {
					t.Errorf("keys %v: %d lines, want %d", keys, len(lines), sz[1])
				}
				for _, l := range lines {
					if w := ansi.StringWidth(l); w > sz[0] {
						t.Errorf("keys %v: line %d wide > %d: %q", keys, w, sz[0], ansi.Strip(l))
					}
				}
			}
		})
	}
	m := newFixtureModel(t, 100, 30)
	scr := screen(m)
	if !strings.Contains(scr, "quiet stages hidden") {
		t.Errorf("30 lines: no note of hidden stages:\n%s", scr)
	}
	for _, id := range []stage.ID{stage.SocketRcvbuf, stage.TCPListen, stage.NIC} {
		row(t, scr, id) // dropping, or selected (nic)
	}
	if strings.Contains(scr, "tx-ring") {
		t.Errorf("a quiet stage is shown on a short screen:\n%s", scr)
	}
}

// key is the message a key press sends, as bubbletea decodes it.
func key(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	case "space":
		return tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

func TestKeys(t *testing.T) {
	for _, k := range []string{"enter", "esc", "down", "up", "ctrl+c", "space", "q", "?", "+", "-"} {
		if got := key(k).String(); got != k {
			t.Errorf("key %q reads as %q", k, got)
		}
	}
	cases := []struct {
		keys        []string
		has, hasNot []string
	}{
		{keys: nil, has: []string{"FINDINGS", "▶ nic"}, hasNot: []string{"KEYS", "PAUSED", "FOCUS"}},
		{keys: []string{"?"}, has: []string{"KEYS", "focus the selected stage"}, hasNot: []string{"FINDINGS"}},
		{keys: []string{"?", "?"}, has: []string{"FINDINGS"}, hasNot: []string{"KEYS"}},
		{keys: []string{"?"}, has: []string{"UNAVAILABLE", "sock_diag: no sockets here"}},
		{keys: []string{"?", "esc"}, has: []string{"FINDINGS"}, hasNot: []string{"KEYS"}},
		{keys: []string{"down", "down"}, has: []string{"▶ xdp"}},
		{keys: []string{"k"}, has: []string{"▶ tx-ring"}},
		{keys: []string{"n"}, has: []string{"▶ socket-rcvbuf"}},
		{keys: []string{"n", "n"}, has: []string{"▶ tcp-listen"}},
		{keys: []string{"n", "n", "n"}, has: []string{"▶ socket-rcvbuf"}},
		{keys: []string{"n", "enter"}, has: []string{"FOCUS socket-rcvbuf", "Udp:RcvbufErrors", "cause:", "fix:", "SOCKET_RCVBUFF at __udp_enqueue_schedule_skb"}, hasNot: []string{"FINDINGS"}},
		{keys: []string{"n", "enter", "esc"}, has: []string{"FINDINGS"}, hasNot: []string{"FOCUS"}},
		{keys: []string{"n", "f", "f"}, has: []string{"FINDINGS"}, hasNot: []string{"FOCUS"}},
		{keys: []string{"p"}, has: []string{"PAUSED"}},
		{keys: []string{"space", "space"}, hasNot: []string{"PAUSED"}},
		{keys: []string{"+"}, has: []string{"every 2s"}},
		{keys: []string{"-", "-"}, has: []string{"every 250ms"}},
		{keys: []string{"-", "-", "-", "-"}, has: []string{"every 100ms"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.keys, ","), func(t *testing.T) {
			m := newFixtureModel(t, 140, 60)
			for _, k := range c.keys {
				if _, cmd := m.Update(key(k)); cmd != nil {
					if _, quit := cmd().(tea.QuitMsg); quit {
						t.Fatalf("%q quits", k)
					}
				}
			}
			scr := screen(m)
			for _, s := range c.has {
				if !strings.Contains(scr, s) {
					t.Errorf("screen lacks %q:\n%s", s, scr)
				}
			}
			for _, s := range c.hasNot {
				if strings.Contains(scr, s) {
					t.Errorf("screen has %q:\n%s", s, scr)
				}
			}
		})
	}
	for _, k := range []string{"q", "ctrl+c"} {
		m := newFixtureModel(t, 80, 24)
		_, cmd := m.Update(key(k))
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s does not quit", k)
		}
	}
}

// TestFocusTotals: the focus pane counts each counter per interval and
// since top started.
func TestFocusTotals(t *testing.T) {
	m := newFixtureModel(t, 140, 60)
	s2 := fixtureSample(t)
	s2.Time = s2.Time.Add(10 * time.Second)
	m.Update(SampleMsg(s2, nil))
	for _, k := range []string{"n", "enter"} {
		m.Update(key(k))
	}
	scr := screen(m)
	var line string
	for _, l := range strings.Split(scr, "\n") {
		if strings.Contains(l, "Udp:RcvbufErrors") && strings.Contains(l, string(counters.ProcNetSNMP)) {
			line = l
		}
	}
	if got, want := strings.Fields(line), []string{"Udp:RcvbufErrors", "500", "1000", string(counters.ProcNetSNMP)}; !cmp.Equal(got, want) {
		t.Errorf("focus counter row %q, want fields %v", line, want)
	}
	if f := strings.Fields(row(t, scr, stage.SocketRcvbuf)); !strings.Contains(strings.Join(f, " "), " 50 1000 50 ") {
		t.Errorf("stage total after two samples: %q", row(t, scr, stage.SocketRcvbuf))
	}
}

// TestPauseFreezes: a paused screen keeps its sample while sampling goes
// on; resuming shows the latest, with the history that came meanwhile.
func TestPauseFreezes(t *testing.T) {
	m := newFixtureModel(t, 140, 60)
	m.Update(key("p"))
	s2 := fixtureSample(t)
	s2.Time = s2.Time.Add(10 * time.Second)
	m.Update(SampleMsg(s2, nil))
	if scr := screen(m); !strings.Contains(scr, "1 samples") || !strings.Contains(scr, "PAUSED") {
		t.Errorf("paused screen moved on:\n%s", scr)
	}
	m.Update(key("p"))
	if scr := screen(m); !strings.Contains(scr, "2 samples") {
		t.Errorf("resumed screen is not the latest:\n%s", scr)
	}
}

// TestSparkline: each column is the highest rate of its slice of the last
// HistorySpan; the peak is a full block, a quiet sample the lowest one,
// no sample a blank.
func TestSparkline(t *testing.T) {
	m := New(context.Background(), Config{Interval: time.Second})
	i := stage.Index(stage.SocketRcvbuf)
	// Four samples 75 s apart over 80 columns of 3.75 s: 0, 50/s, 0, 25/s.
	for n, drops := range []uint64{0, 500, 0, 250} {
		r := &diagnose.Report{}
		for _, st := range stage.All() {
			sd := diagnose.StageDrops{Stage: st.ID}
			if st.ID == stage.SocketRcvbuf {
				sd.Drops, sd.Rate = drops, float64(drops)/10
			}
			r.Stages = append(r.Stages, sd)
		}
		m.Update(SampleMsg(&Sample{Time: t0.Add(time.Duration(n) * 75 * time.Second), Interval: 10 * time.Second, Report: r}, nil))
	}
	got := []rune(ansi.Strip(m.sparkline(i, 80, 50)))
	want := []rune(strings.Repeat(" ", 80))
	want[79-60], want[79-40], want[79-20], want[79] = '▁', '█', '▁', '▅'
	if string(got) != string(want) {
		t.Errorf("sparkline\n got %q\nwant %q", string(got), string(want))
	}
	// Past HistorySpan a point is forgotten.
	r := m.live.last.Report
	m.Update(SampleMsg(&Sample{Time: t0.Add(HistorySpan + 76*time.Second), Interval: time.Second, Report: r}, nil))
	if n := len(m.live.points); n != 3 {
		t.Errorf("%d points kept, want 3 (the first is older than %s)", n, HistorySpan)
	}
}

// TestSamplingLoop: a tick starts one reading; its sample schedules the
// next tick; a tick from before an interval change is ignored, and a
// failed reading is shown without stopping the loop.
func TestSamplingLoop(t *testing.T) {
	calls := 0
	next := func(context.Context) (*Sample, error) {
		calls++
		if calls == 2 {
			return nil, fmt.Errorf("netns web: no such file or directory")
		}
		return fixtureSample(t), nil
	}
	m := New(context.Background(), Config{Next: next, Interval: 500 * time.Millisecond})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if m.Init() == nil {
		t.Fatal("Init starts no interval")
	}
	_, cmd := m.Update(tickMsg{gen: 0})
	if cmd == nil {
		t.Fatal("a tick starts no reading")
	}
	if _, again := m.Update(tickMsg{gen: 0}); again != nil {
		t.Error("a second tick during a reading starts another")
	}
	msg := cmd()
	if _, cmd = m.Update(msg); cmd == nil {
		t.Fatal("a sample schedules no next tick")
	}
	if calls != 1 || m.live.samples != 1 {
		t.Errorf("calls %d samples %d", calls, m.live.samples)
	}
	m.Update(key("+")) // gen 1: the pending gen-0 tick is stale
	if _, c := m.Update(tickMsg{gen: 0}); c != nil {
		t.Error("a stale tick starts a reading")
	}
	_, cmd = m.Update(tickMsg{gen: 1})
	m.Update(cmd())
	if scr := screen(m); !strings.Contains(scr, "reading failed: netns web: no such file") {
		t.Errorf("failed reading not shown:\n%s", scr)
	}
	_, cmd = m.Update(tickMsg{gen: 1})
	m.Update(cmd())
	if scr := screen(m); strings.Contains(scr, "reading failed") || m.live.samples != 2 {
		t.Errorf("loop did not go on after a failed reading (samples %d):\n%s", m.live.samples, scr)
	}
}
