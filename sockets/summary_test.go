package sockets

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func tcp4(state State, local, remote string) Socket {
	return Socket{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, State: state,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
}

var apCmp = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

// TestDestinationsShare builds a port range of 100 and fills it toward one
// destination from two sources, to check the share is per source and the
// thresholds are strict.
func TestDestinationsShare(t *testing.T) {
	settings := Settings{PortLow: 1000, PortHigh: 1099, TwReuse: 2, Timestamps: 1}
	tests := []struct {
		name     string
		settings Settings
		socks    func() []Socket
		want     []Destination
	}{
		{
			name:     "critical above 90% from one source, not the other",
			settings: settings,
			socks: func() []Socket {
				var s []Socket
				for p := 1000; p < 1091; p++ { // 91 of 100
					s = append(s, tcp4(TimeWait, fmt.Sprintf("10.200.0.1:%d", p), "10.200.9.9:80"))
				}
				for p := 1000; p < 1010; p++ {
					s = append(s, tcp4(Established, fmt.Sprintf("10.200.0.2:%d", p), "10.200.9.9:80"))
				}
				// An explicitly bound port outside the range uses none of it.
				s = append(s, tcp4(Established, "10.200.0.1:5000", "10.200.9.9:80"))
				return s
			},
			want: []Destination{{Remote: netip.MustParseAddrPort("10.200.9.9:80"), Sockets: 102, TimeWait: 91, Established: 11,
				Sources: 2, EphemeralInUse: 91, Share: 0.91, Severity: "critical", TwReuse: TwReuseWouldHelp}},
		},
		{
			name:     "exactly 50% is not yet a warning; 51% is",
			settings: Settings{PortLow: 1000, PortHigh: 1099, TwReuse: 1, Timestamps: 1},
			socks: func() []Socket {
				var s []Socket
				for p := 1000; p < 1050; p++ {
					s = append(s, tcp4(TimeWait, fmt.Sprintf("10.200.0.1:%d", p), "10.200.9.9:80"))
				}
				for p := 1000; p < 1051; p++ {
					s = append(s, tcp4(TimeWait, fmt.Sprintf("10.200.0.1:%d", p), "10.200.9.8:443"))
				}
				return s
			},
			want: []Destination{
				{Remote: netip.MustParseAddrPort("10.200.9.8:443"), Sockets: 51, TimeWait: 51, Sources: 1, EphemeralInUse: 51, Share: 0.51, Severity: "warning", TwReuse: TwReuseActive},
				{Remote: netip.MustParseAddrPort("10.200.9.9:80"), Sockets: 50, TimeWait: 50, Sources: 1, EphemeralInUse: 50, Share: 0.5, TwReuse: TwReuseActive},
			},
		},
		{
			name:     "no timestamps: reuse cannot work; v4-mapped counts with v4",
			settings: Settings{PortLow: 1000, PortHigh: 1099, TwReuse: 1, Timestamps: 0},
			socks: func() []Socket {
				s := tcp4(TimeWait, "10.200.0.1:1000", "10.200.9.9:80")
				m := Socket{Family: unix.AF_INET6, Protocol: unix.IPPROTO_TCP, State: TimeWait,
					Local: netip.MustParseAddrPort("[::ffff:10.200.0.1]:1001"), Remote: netip.MustParseAddrPort("[::ffff:10.200.9.9]:80")}
				return []Socket{s, m}
			},
			want: []Destination{{Remote: netip.MustParseAddrPort("10.200.9.9:80"), Sockets: 2, TimeWait: 2, Sources: 1, EphemeralInUse: 2, Share: 0.02, TwReuse: TwReuseNoTimestamps}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAggregator(Options{}, tt.settings, nil)
			for _, s := range tt.socks() {
				a.add(&s)
			}
			got := a.summary()
			if diff := cmp.Diff(tt.want, got.Destinations, apCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTimeWaitSides: a TIME_WAIT on a listening port is the server's.
func TestTimeWaitSides(t *testing.T) {
	a := newAggregator(Options{}, DefaultSettings, nil)
	l := tcp4(Listen, "0.0.0.0:8080", "0.0.0.0:0")
	a.noteListener(&l)
	for _, s := range []Socket{
		tcp4(TimeWait, "10.200.0.1:8080", "10.200.0.7:40000"),
		tcp4(TimeWait, "10.200.0.1:8080", "10.200.0.8:40001"),
		tcp4(Established, "10.200.0.1:8080", "10.200.0.8:40002"), // accepted: not a client
		tcp4(TimeWait, "10.200.0.1:40000", "10.200.0.9:5432"),
	} {
		a.add(&s)
	}
	got := a.summary()
	if diff := cmp.Diff(TimeWaitSides{Total: 3, Server: 2, Client: 1}, got.TimeWait); diff != "" {
		t.Errorf("sides (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]PortCount{{Port: 8080, Count: 2}}, got.ServerTimeWait); diff != "" {
		t.Errorf("server ports (-want +got):\n%s", diff)
	}
	if len(got.Destinations) != 1 || got.Destinations[0].Remote.Port() != 5432 {
		t.Errorf("destinations %+v, want only the client's 5432", got.Destinations)
	}
}

// TestPressureTop keeps the worst N in bounded memory and counts the rest.
func TestPressureTop(t *testing.T) {
	a := newAggregator(Options{Top: 3}, DefaultSettings, nil)
	for i := 0; i < 50; i++ {
		s := Socket{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, State: Close, Cookie: uint64(i),
			Local: netip.MustParseAddrPort(fmt.Sprintf("[fd00::1]:%d", 1000+i)), HasMem: true,
			Mem: MemInfo{Drops: uint32(i % 10), RmemAlloc: 10, Rcvbuf: 100, HasDrops: true}}
		a.add(&s)
	}
	// A socket near its buffer without drops counts too; one with
	// neither does not.
	full := Socket{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, State: Established, HasMem: true, Mem: MemInfo{RmemAlloc: 90, Rcvbuf: 100}}
	idle := Socket{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, State: Established, HasMem: true, Mem: MemInfo{RmemAlloc: 10, Rcvbuf: 100}}
	a.add(&full)
	a.add(&idle)
	got := a.summary()
	if got.PressureTotal != 46 {
		t.Errorf("pressure total %d, want 45 with drops + 1 near full", got.PressureTotal)
	}
	var drops []uint32
	var cookies []uint64
	for _, p := range got.Pressure {
		drops = append(drops, p.Drops)
		cookies = append(cookies, p.Cookie)
	}
	if diff := cmp.Diff([]uint32{9, 9, 9}, drops); diff != "" {
		t.Errorf("drops (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{9, 19, 29}, cookies); diff != "" {
		t.Errorf("ties broken by cookie (-want +got):\n%s", diff)
	}
}

func TestListeners(t *testing.T) {
	a := newAggregator(Options{}, DefaultSettings, nil)
	for _, s := range []Socket{
		{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, State: Listen, Local: netip.MustParseAddrPort("0.0.0.0:80"), RQueue: 0, WQueue: 4096},
		{Family: unix.AF_INET6, Protocol: unix.IPPROTO_TCP, State: Listen, Local: netip.MustParseAddrPort("[::]:9090"), RQueue: 3, WQueue: 2, HasMem: true, Mem: MemInfo{Drops: 7}},
		{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, State: Listen, Local: netip.MustParseAddrPort("0.0.0.0:81"), RQueue: 100, WQueue: 128},
	} {
		a.noteListener(&s)
		a.add(&s)
	}
	got := a.summary().Listeners
	want := []Listener{
		{Family: "ipv6", Local: netip.MustParseAddrPort("[::]:9090"), Queued: 3, Backlog: 2, Fill: 1.5, Full: true, Drops: 7},
		{Family: "ipv4", Local: netip.MustParseAddrPort("0.0.0.0:81"), Queued: 100, Backlog: 128, Fill: 100.0 / 128},
		{Family: "ipv4", Local: netip.MustParseAddrPort("0.0.0.0:80"), Backlog: 4096},
	}
	if diff := cmp.Diff(want, got, apCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseStates(t *testing.T) {
	tests := []struct {
		in      string
		want    StateSet
		wantErr bool
	}{
		{in: "time-wait", want: 1 << TimeWait},
		{in: "TIME_WAIT,estab", want: 1<<TimeWait | 1<<Established},
		{in: "established, listen", want: 1<<Established | 1<<Listen},
		{in: "unconn", want: 1 << Close},
		{in: "bucket", want: 1<<SynRecv | 1<<TimeWait},
		{in: "all", want: AllStates},
		{in: "connected", want: AllStates &^ (1<<Listen | 1<<Close)},
		{in: "bogus", wantErr: true},
		{in: " , ", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseStates(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseStates(%q) error %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseStates(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

// writeFile writes a fixture file, creating its directory.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadSettings(t *testing.T) {
	tests := []struct {
		name         string
		files        map[string]string
		want         Settings
		wantProblems int
	}{
		{
			name:  "as on this kernel",
			files: map[string]string{"ip_local_port_range": "32768\t60999\n", "tcp_tw_reuse": "2\n", "tcp_timestamps": "1\n"},
			want:  Settings{PortLow: 32768, PortHigh: 60999, TwReuse: 2, Timestamps: 1},
		},
		{
			name:  "tuned",
			files: map[string]string{"ip_local_port_range": "1024 65535\n", "tcp_tw_reuse": "1\n", "tcp_timestamps": "0\n"},
			want:  Settings{PortLow: 1024, PortHigh: 65535, TwReuse: 1, Timestamps: 0},
		},
		{
			name:         "broken range and missing files keep defaults and say so",
			files:        map[string]string{"ip_local_port_range": "60999 32768\n", "tcp_tw_reuse": "x\n"},
			want:         DefaultSettings,
			wantProblems: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, filepath.Join(root, "sys", "net", "ipv4", name), content)
			}
			got, problems := ReadSettings(root)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if len(problems) != tt.wantProblems {
				t.Errorf("problems %q, want %d", problems, tt.wantProblems)
			}
		})
	}
	if got := (Settings{PortLow: 32768, PortHigh: 60999}).PortRangeSize(); got != 28232 {
		t.Errorf("range size %d, want 28232", got)
	}
}

// TestScanOwners walks a fixture /proc: fd links are dangling symlinks with
// the targets the kernel shows.
func TestScanOwners(t *testing.T) {
	root := t.TempDir()
	link := func(pid, fd, target string) {
		t.Helper()
		dir := filepath.Join(root, pid, "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, fd)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "100", "comm"), "nginx\n")
	link("100", "3", "socket:[5001]")
	link("100", "4", "socket:[5002]")
	link("100", "5", "/var/log/nginx.log")
	writeFile(t, filepath.Join(root, "200", "comm"), "nginx\n")
	link("200", "3", "socket:[5001]") // inherited listener
	writeFile(t, filepath.Join(root, "300", "comm"), "dnsd\n")
	link("300", "7", "socket:[6000]")
	link("300", "8", "socket:[notanumber]")
	writeFile(t, filepath.Join(root, "400", "comm"), "gone\n") // no fd dir: exited or unreadable
	writeFile(t, filepath.Join(root, "self", "comm"), "x\n")   // not a pid

	tests := []struct {
		name          string
		filter        ProcessFilter
		want          func(uint32) bool
		owners        map[uint32][]Process
		procs, unread int
	}{
		{
			name: "all",
			owners: map[uint32][]Process{
				5001: {{100, "nginx"}, {200, "nginx"}},
				5002: {{100, "nginx"}},
				6000: {{300, "dnsd"}},
			},
			procs: 4, unread: 1,
		},
		{
			name:   "wanted inodes only",
			want:   func(i uint32) bool { return i == 6000 },
			owners: map[uint32][]Process{6000: {{300, "dnsd"}}},
			procs:  4, unread: 1,
		},
		{
			name:   "by comm",
			filter: ProcessFilter{Comm: "nginx"},
			owners: map[uint32][]Process{5001: {{100, "nginx"}, {200, "nginx"}}, 5002: {{100, "nginx"}}},
			procs:  2,
		},
		{
			name:   "by pid",
			filter: ProcessFilter{PID: 300},
			owners: map[uint32][]Process{6000: {{300, "dnsd"}}},
			procs:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ScanOwners(root, tt.filter, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.owners, got.Owners); diff != "" {
				t.Errorf("owners (-want +got):\n%s", diff)
			}
			if got.Processes != tt.procs || got.Unreadable != tt.unread {
				t.Errorf("processes %d unreadable %d, want %d %d", got.Processes, got.Unreadable, tt.procs, tt.unread)
			}
		})
	}
	if _, err := ScanOwners(filepath.Join(root, "missing"), ProcessFilter{}, nil); err == nil {
		t.Error("want an error for a missing /proc")
	}
}

func TestParseProcessFilter(t *testing.T) {
	for in, want := range map[string]ProcessFilter{"1234": {PID: 1234}, "nginx": {Comm: "nginx"}, " sshd ": {Comm: "sshd"}} {
		got, err := ParseProcessFilter(in)
		if err != nil || got != want {
			t.Errorf("ParseProcessFilter(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5"} {
		if _, err := ParseProcessFilter(in); err == nil {
			t.Errorf("ParseProcessFilter(%q): want an error", in)
		}
	}
}

func FuzzParsePortRange(f *testing.F) {
	f.Add("32768\t60999\n")
	f.Add("1 1")
	f.Add("65535 1024")
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := parsePortRange(s)
		if err == nil && (lo < 1 || hi > 65535 || lo > hi) {
			t.Fatalf("accepted range %d-%d from %q", lo, hi, s)
		}
	})
}

func TestNewDrops(t *testing.T) {
	l := netip.MustParseAddrPort("0.0.0.0:80")
	u := netip.MustParseAddrPort("[fd00::1]:53")
	before := &Summary{
		Listeners: []Listener{{Family: "ipv4", Local: l, Drops: 10, Cookie: 1}},
		Pressure:  []PressuredSocket{{Family: "ipv6", Protocol: "udp", State: Close, Local: u, Drops: 4294967290, Cookie: 2}},
	}
	after := &Summary{
		Listeners: []Listener{{Family: "ipv4", Local: l, Drops: 10, Cookie: 1}}, // no new drops
		Pressure: []PressuredSocket{
			{Family: "ipv6", Protocol: "udp", State: Close, Local: u, Drops: 4, Cookie: 2, RmemAlloc: 9, Rcvbuf: 9}, // wrapped
			{Family: "ipv4", Protocol: "tcp", State: Established, Local: l, Drops: 3, Cookie: 3},                    // new socket
		},
	}
	want := []Dropped{
		{Family: "ipv6", Protocol: "udp", State: Close, Local: u, Drops: 10, TotalDrops: 4, RmemAlloc: 9, Rcvbuf: 9},
		{Family: "ipv4", Protocol: "tcp", State: Established, Local: l, Drops: 3, TotalDrops: 3},
	}
	if diff := cmp.Diff(want, NewDrops(before, after), apCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	after.Listeners[0].Drops = 15
	got := NewDrops(nil, after)
	if len(got) != 3 || !got[0].Listener || got[0].Drops != 15 {
		t.Errorf("since boot: %+v", got)
	}
}

func TestStateJSON(t *testing.T) {
	for st := State(1); st <= 14; st++ {
		b, err := st.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != st {
			t.Errorf("state %d: %q read back as %d, %v", st, b, back, err)
		}
	}
	var s State
	if err := s.UnmarshalText([]byte("NOPE")); err == nil {
		t.Error("want an error for an unknown state")
	}
}

func FuzzSocketInode(f *testing.F) {
	for _, s := range []string{"socket:[12345]", "socket:[]", "pipe:[1]", "socket:[4294967296]", "/dev/null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := socketInode(s)
		if !ok {
			return
		}
		mid := strings.TrimSuffix(strings.TrimPrefix(s, "socket:["), "]")
		v, err := strconv.ParseUint(mid, 10, 32)
		if !strings.HasPrefix(s, "socket:[") || !strings.HasSuffix(s, "]") || err != nil || uint32(v) != n {
			t.Fatalf("accepted %q as inode %d", s, n)
		}
	})
}
