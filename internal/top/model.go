package top

import (
	"context"
	"maps"
	"slices"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/stage"
)

// HistorySpan is how far back the sparklines reach. Loss comes in bursts;
// five minutes at a glance shows whether the burst now is the first.
const HistorySpan = 5 * time.Minute

// Intervals are the steps + and - move through. The shortest is the
// commands' minimum (internal/cli: readings closer than that measure the
// drivers' refresh, not the host).
var Intervals = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

// Config is what the model shows besides the samples.
type Config struct {
	// Next returns the next interval's sample; top calls it once per
	// interval, never twice at once.
	Next func(ctx context.Context) (*Sample, error)
	// Interval is the first interval.
	Interval time.Duration
	// Netns names the namespace watched, for the title.
	Netns string
	// Trace and Sockets say which panels were asked for.
	Trace, Sockets bool
}

// Model is top's state: the history of samples, what the user selected,
// and the terminal's size. Update changes it; View draws it.
type Model struct {
	ctx context.Context
	cfg Config

	interval time.Duration
	width    int
	height   int

	live *history
	// shown is what the screen shows: live, or a copy frozen by pause
	// while sampling goes on (so the sparklines have no gap after).
	shown  *history
	paused bool

	cursor int  // index into stage.All()
	focus  bool // the focused stage's detail replaces the panels
	help   bool

	// sampling is true while a reading runs; gen numbers the pending
	// tick so that a tick from before an interval change is ignored.
	sampling bool
	gen      int
	err      error
}

// point is one sample's rates and severities by stage index.
type point struct {
	t    time.Time
	rate []float64
	sev  []int8 // -1: no finding at the stage; else a diagnose.Severity
}

// history is everything the screen draws from.
type history struct {
	last    *Sample
	points  []point
	samples int
	start   time.Time
	// stageTotal and counterTotal add up the drops since top started.
	stageTotal   map[stage.ID]uint64
	counterTotal map[counters.Key]counterTotal
}

type counterTotal struct {
	c     counters.Counter // the last delta seen, for its name and source
	total uint64
}

func newHistory() *history {
	return &history{stageTotal: map[stage.ID]uint64{}, counterTotal: map[counters.Key]counterTotal{}}
}

func (h *history) clone() *history {
	c := *h
	c.points = slices.Clone(h.points)
	c.stageTotal = maps.Clone(h.stageTotal)
	c.counterTotal = maps.Clone(h.counterTotal)
	return &c
}

// add records a sample and forgets points older than HistorySpan.
func (h *history) add(s *Sample) {
	all := stage.All()
	p := point{t: s.Time, rate: make([]float64, len(all)), sev: make([]int8, len(all))}
	sev := stageSeverity(s.Report)
	for i, st := range all {
		p.sev[i] = -1
		if v, ok := sev[st.ID]; ok {
			p.sev[i] = int8(v)
		}
	}
	for _, sd := range s.Report.Stages {
		if i := stage.Index(sd.Stage); i >= 0 {
			p.rate[i] = sd.Rate
		}
		h.stageTotal[sd.Stage] += sd.Drops
	}
	for _, c := range s.Moved {
		t := h.counterTotal[c.Key()]
		h.counterTotal[c.Key()] = counterTotal{c: c, total: t.total + c.Value}
	}
	if h.samples == 0 {
		h.start = s.Time.Add(-s.Interval)
	}
	h.samples++
	h.last = s
	h.points = append(h.points, p)
	cut := 0
	for cut < len(h.points) && s.Time.Sub(h.points[cut].t) > HistorySpan {
		cut++
	}
	h.points = h.points[cut:]
}

// stageSeverity is the worst severity of the findings at each stage: the
// colour of its drops.
func stageSeverity(r *diagnose.Report) map[stage.ID]diagnose.Severity {
	out := map[stage.ID]diagnose.Severity{}
	for _, f := range r.Findings {
		if s, ok := out[f.Stage]; !ok || f.Severity > s {
			out[f.Stage] = f.Severity
		}
	}
	return out
}

// New returns the model of a top that has not sampled yet.
func New(ctx context.Context, cfg Config) *Model {
	h := newHistory()
	return &Model{ctx: ctx, cfg: cfg, interval: cfg.Interval, live: h, shown: h, width: 80, height: 24}
}

// Messages of the model.
type (
	// tickMsg says an interval has passed; gen is the interval's number.
	tickMsg struct{ gen int }
	// sampleMsg carries a reading's result.
	sampleMsg struct {
		s   *Sample
		err error
	}
)

// SampleMsg wraps a sample as the message Update takes (tests feed the
// model with it).
func SampleMsg(s *Sample, err error) tea.Msg { return sampleMsg{s: s, err: err} }

func (m *Model) tick() tea.Cmd {
	gen := m.gen
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return tickMsg{gen: gen} })
}

func (m *Model) sample() tea.Cmd {
	next, ctx := m.cfg.Next, m.ctx
	return func() tea.Msg {
		s, err := next(ctx)
		return sampleMsg{s: s, err: err}
	}
}

// Init starts the first interval.
func (m *Model) Init() tea.Cmd { return m.tick() }

// Update handles keys, resizes, ticks and samples.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tickMsg:
		if msg.gen != m.gen || m.sampling || m.cfg.Next == nil {
			return m, nil
		}
		m.sampling = true
		return m, m.sample()
	case sampleMsg:
		m.sampling = false
		if msg.err != nil {
			m.err = msg.err
		} else if msg.s != nil {
			m.err = nil
			m.live.add(msg.s)
			if !m.paused {
				m.shown = m.live
			}
		}
		if m.cfg.Next == nil {
			return m, nil
		}
		return m, m.tick()
	case tea.KeyPressMsg:
		return m, m.key(msg.String())
	}
	return m, nil
}

// Keys, as the help screen lists them.
var keyHelp = [][2]string{
	{"↑ ↓  k j", "select a stage"},
	{"enter  f", "focus the selected stage: its counters, evidence, cause and fix (again or esc: back)"},
	{"n", "select the next stage that drops now"},
	{"p  space", "pause the screen (sampling goes on; the history has no gap)"},
	{"+  -", "longer or shorter interval"},
	{"?", "this help (again or esc: back)"},
	{"q  ctrl+c", "quit"},
}

func (m *Model) key(k string) tea.Cmd {
	n := len(stage.All())
	switch k {
	case "q", "ctrl+c":
		return tea.Quit
	case "?":
		m.help = !m.help
	case "esc":
		switch {
		case m.help:
			m.help = false
		case m.focus:
			m.focus = false
		}
	case "up", "k":
		m.cursor = (m.cursor + n - 1) % n
	case "down", "j":
		m.cursor = (m.cursor + 1) % n
	case "n":
		m.cursor = m.nextDropping()
	case "enter", "f":
		m.focus = !m.focus
		m.help = false
	case "p", "space", " ":
		m.paused = !m.paused
		if m.paused {
			m.shown = m.live.clone()
		} else {
			m.shown = m.live
		}
	case "+", "=":
		return m.setInterval(+1)
	case "-", "_":
		return m.setInterval(-1)
	}
	return nil
}

// nextDropping is the first stage after the cursor whose rate is above
// zero now, or the cursor when none is.
func (m *Model) nextDropping() int {
	pts := m.shown.points
	if len(pts) == 0 {
		return m.cursor
	}
	last := pts[len(pts)-1]
	n := len(last.rate)
	for i := 1; i <= n; i++ {
		j := (m.cursor + i) % n
		if last.rate[j] > 0 {
			return j
		}
	}
	return m.cursor
}

// setInterval moves to the next longer (dir +1) or shorter (-1) step and
// starts the interval over at once.
func (m *Model) setInterval(dir int) tea.Cmd {
	next := m.interval
	if dir > 0 {
		for _, d := range Intervals {
			if d > m.interval {
				next = d
				break
			}
		}
	} else {
		for _, d := range slices.Backward(Intervals) {
			if d < m.interval {
				next = d
				break
			}
		}
	}
	if next == m.interval {
		return nil
	}
	m.interval = next
	m.gen++
	if m.sampling || m.cfg.Next == nil {
		return nil // the sample in flight schedules the next tick
	}
	return m.tick()
}

// Interval is the current interval.
func (m *Model) Interval() time.Duration { return m.interval }
