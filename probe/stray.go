package probe

import (
	"net"
	"sync"
	"time"
)

// Stray is what reached a probe server outside any run: bytes that were not
// a probe at all (a port scan, a misdirected application, an attacker) or
// control frames that started nothing. Inside a run such traffic is in the
// run's own report (Invalid, Foreign, Control); outside one it used to be
// discarded without a trace, so a server under a garbage flood looked idle.
// The counts are totals since the server started.
type Stray struct {
	// Datagrams outside a run that did not start one (UDP), and their
	// bytes.
	Datagrams uint64 `json:"datagrams"`
	Bytes     uint64 `json:"bytes"`
	// SocketDrops is what the UDP socket itself dropped outside runs (its
	// queue was full): a flood is larger than Datagrams by that much.
	SocketDrops uint64 `json:"socket_drops"`
	// Conns is TCP connections closed without having started a run, and
	// ConnBytes what was read from them.
	Conns     uint64 `json:"connections"`
	ConnBytes uint64 `json:"connection_bytes"`
	// TimedOut counts TCP connections closed because they sent no Hello in
	// time or fell silent in a run; Refused those closed at once because
	// the server was serving as many connections as it may.
	TimedOut uint64 `json:"timed_out"`
	Refused  uint64 `json:"refused"`
	// LastFrom is the address of the latest stray peer (for the log line;
	// left out of the reports sent to clients).
	LastFrom string `json:"last_from,omitempty"`
}

// Zero reports whether nothing stray arrived.
func (s Stray) Zero() bool {
	return s.Datagrams == 0 && s.SocketDrops == 0 && s.Conns == 0 && s.TimedOut == 0 && s.Refused == 0
}

// same reports whether two totals count the same events.
func (s Stray) same(o Stray) bool {
	s.LastFrom, o.LastFrom = "", ""
	return s == o
}

// strayCounter holds a server's Stray totals and says when they are due to
// be reported through ServerConfig.OnStray: at most once per StrayEvery, and
// only when something new arrived.
type strayCounter struct {
	mu       sync.Mutex
	total    Stray
	lastFrom net.Addr // formatted only when read: a flood costs no strings
	reported Stray
	lastAt   time.Time
}

func (c *strayCounter) add(fn func(*Stray), from net.Addr) {
	c.mu.Lock()
	fn(&c.total)
	if from != nil {
		c.lastFrom = from
	}
	c.mu.Unlock()
}

func (c *strayCounter) get() Stray {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.totalLocked()
}

func (c *strayCounter) totalLocked() Stray {
	t := c.total
	if c.lastFrom != nil {
		t.LastFrom = c.lastFrom.String()
	}
	return t
}

// due returns the totals and true when they changed since the last report
// and the last report is at least every old (or force is set).
func (c *strayCounter) due(now time.Time, every time.Duration, force bool) (Stray, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total.same(c.reported) || (!force && now.Sub(c.lastAt) < every) {
		return Stray{}, false
	}
	c.reported, c.lastAt = c.total, now
	return c.totalLocked(), true
}

// forReport is st as a run's report carries it: nil when nothing stray
// arrived, and without the latest stray peer's address, since the report
// goes to a client.
func forReport(st Stray) *Stray {
	if st.Zero() {
		return nil
	}
	st.LastFrom = ""
	return &st
}
