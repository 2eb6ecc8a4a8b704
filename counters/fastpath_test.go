package counters

// Tests of the helpers that make a snapshot cheap: the line scanner, the
// field splitter, name lookup, the shared per-snapshot reads, the read
// order of the parallel path and the merge of its parts. Each is checked against the slower code
// it replaced, so the speed-up cannot change what is read.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// scannerLines is what bufio.Scanner made of the same text: the behaviour
// scanLines keeps.
func scannerLines(in string) []string {
	sc := bufio.NewScanner(strings.NewReader(in))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func collectLines(t *testing.T, in string, oneByte bool) []string {
	t.Helper()
	var r = strings.NewReader(in)
	var got []string
	var err error
	if oneByte {
		err = scanLines(iotest.OneByteReader(r), func(n int, line string) error {
			if n != len(got)+1 {
				t.Errorf("line %q numbered %d, want %d", line, n, len(got)+1)
			}
			got = append(got, line)
			return nil
		})
	} else {
		err = scanLines(r, func(n int, line string) error {
			got = append(got, line)
			return nil
		})
	}
	if err != nil {
		t.Fatalf("scanLines: %v", err)
	}
	return got
}

func TestScanLinesAsScanner(t *testing.T) {
	long := strings.Repeat("x", 40*1024) // wider than the first buffer
	for name, in := range map[string]string{
		"empty":           "",
		"one":             "a b c\n",
		"no final eol":    "a\nb",
		"blank lines":     "\n\na\n\n",
		"crlf":            "a\r\nb\r\n\r\n",
		"long line":       "head\n" + long + "\ntail\n",
		"many lines":      strings.Repeat("Udp: 1 2 3 4 5 6 7\n", 3000),
		"long, no eol":    long,
		"cr in the line":  "a\rb\n",
		"only a newline":  "\n",
		"trailing spaces": "a  \n  b\n",
	} {
		t.Run(name, func(t *testing.T) {
			want := scannerLines(in)
			for _, oneByte := range []bool{false, true} {
				if diff := cmp.Diff(want, collectLines(t, in, oneByte)); diff != "" {
					t.Errorf("one byte reads %v (-want +got):\n%s", oneByte, diff)
				}
			}
		})
	}
}

func TestScanLinesErrors(t *testing.T) {
	// fn's errors are collected and scanning goes on.
	var seen []int
	err := scanLines(strings.NewReader("a\nb\nc\n"), func(n int, line string) error {
		seen = append(seen, n)
		if line == "b" {
			return lineError(n, "bad")
		}
		return nil
	})
	if !errors.Is(err, ErrFileParse) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("err = %v, want line 2's parse error", err)
	}
	if diff := cmp.Diff([]int{1, 2, 3}, seen); diff != "" {
		t.Errorf("lines seen (-want +got):\n%s", diff)
	}
	// A read error stops scanning after the lines already read.
	boom := errors.New("boom")
	var got []string
	err = scanLines(iotest.DataErrReader(strings.NewReader("a\nb")), func(_ int, line string) error {
		got = append(got, line)
		return nil
	})
	if err != nil {
		t.Errorf("clean EOF with data gave %v", err)
	}
	err = scanLines(iotest.ErrReader(boom), func(int, string) error { return nil })
	if !errors.Is(err, boom) || !errors.Is(err, ErrFileParse) {
		t.Errorf("read error = %v, want it wrapped in ErrFileParse", err)
	}
	// A line longer than maxLine is refused, as bufio.Scanner refused it.
	err = scanLines(strings.NewReader(strings.Repeat("x", maxLine+1)), func(int, string) error { return nil })
	if !errors.Is(err, bufio.ErrTooLong) {
		t.Errorf("over-long line: err = %v, want ErrTooLong", err)
	}
}

func FuzzScanLines(f *testing.F) {
	f.Add("a\nb\r\n\nc")
	f.Add("Ip: Forwarding DefaultTTL\nIp: 1 64\n")
	f.Fuzz(func(t *testing.T, in string) {
		want := scannerLines(in)
		got := collectLines(t, in, false)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-scanner +scanLines):\n%s", diff)
		}
	})
}

func TestAppendFields(t *testing.T) {
	for _, in := range []string{
		"", "   ", "a", " a  b\tc\n", "Udp: 1 2\r", "\va\fb", "x\u00a0y z", "é a",
	} {
		want := strings.Fields(in)
		got := appendFields(nil, in)
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("appendFields(%q) (-strings.Fields +got):\n%s", in, diff)
		}
	}
	// The array is reused.
	buf := appendFields(nil, "a b c d")
	again := appendFields(buf[:0], "e f")
	if &again[0] != &buf[0] {
		t.Error("appendFields did not reuse dst's array")
	}
}

func FuzzAppendFields(f *testing.F) {
	f.Add("TcpExt: SyncookiesSent 0\t1")
	f.Fuzz(func(t *testing.T, in string) {
		want, got := strings.Fields(in), appendFields(nil, in)
		if len(want) == 0 && len(got) == 0 {
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-strings.Fields +appendFields):\n%s", diff)
		}
	})
}

// TestLookupFieldBytes checks that it returns what LookupCounter says
// for every catalog name, for the sources with their own entries, and for
// names the catalog does not know.
func TestLookupFieldBytes(t *testing.T) {
	check := func(source SourceID, name string) {
		t.Helper()
		wantInfo, _ := LookupCounter(source, name)
		got, info := lookupFieldBytes(source, []byte(name))
		if got != name {
			t.Errorf("lookupFieldBytes(%s, %q) name = %q", source, name, got)
		}
		if diff := cmp.Diff(wantInfo, info); diff != "" {
			t.Errorf("lookupFieldBytes(%s, %q) (-LookupCounter +got):\n%s", source, name, diff)
		}
	}
	for name := range catalog() {
		check(ProcNetSNMP, name)
		for src := range bySource() {
			check(src, name)
		}
	}
	for _, name := range []string{"Udp:NewField", "cpu3", "", "entries", "drops"} {
		check(ProcNetNetstat, name)
		check(ProcNetStatConntrack, name)
	}
	// A known name comes back as the catalog's own string, without
	// allocating.
	b := []byte("Udp:RcvbufErrors")
	first, _ := lookupFieldBytes(ProcNetNetstat, b)
	if n := testing.AllocsPerRun(100, func() { lookupFieldBytes(ProcNetNetstat, b) }); n != 0 {
		t.Errorf("lookupFieldBytes(%q) allocates %v times", b, n)
	}
	if again, _ := lookupFieldBytes(ProcNetNetstat, b); again != first || again != string(b) {
		t.Errorf("lookupFieldBytes(%q) = %q then %q", b, first, again)
	}
}

// countingSource counts how often its Collect runs and records the order.
type countingSource struct {
	name  SourceID
	calls *atomic.Int32
}

func (c countingSource) ID() SourceID { return c.name }
func (c countingSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	c.calls.Add(1)
	s.Add(Counter{Source: c.name, Field: "x", Value: 1})
	return nil
}

func TestSlowestFirst(t *testing.T) {
	var calls atomic.Int32
	srcs := []Source{
		countingSource{"a", &calls}, countingSource{ProcNetUDP, &calls}, countingSource{"b", &calls},
		countingSource{NetlinkLinkStats, &calls}, countingSource{ProcSys, &calls},
	}
	got := slowestFirst(srcs)
	if diff := cmp.Diff([]int{3, 4, 1, 0, 2}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	// Whatever the read order, the parallel path merges in source order.
	s := Collect(context.Background(), Options{Sources: srcs, Enter: func(fn func() error) error { return fn() }, Workers: 2})
	var names []SourceID
	for _, c := range s.Counters {
		names = append(names, c.Source)
	}
	if diff := cmp.Diff([]SourceID{"a", ProcNetUDP, "b", NetlinkLinkStats, ProcSys}, names); diff != "" {
		t.Errorf("merged order (-want +got):\n%s", diff)
	}
	if calls.Load() != int32(len(srcs)) {
		t.Errorf("%d reads for %d sources", calls.Load(), len(srcs))
	}
}

// TestEnterFailure checks that a worker that cannot enter the namespace
// reports every source it would have read.
func TestEnterFailure(t *testing.T) {
	var calls atomic.Int32
	srcs := []Source{countingSource{"a", &calls}, countingSource{"b", &calls}, countingSource{"c", &calls}}
	s := Collect(context.Background(), Options{Sources: srcs, Workers: 2, Enter: func(func() error) error {
		return fmt.Errorf("no such namespace")
	}})
	if calls.Load() != 0 || len(s.Unavailable) != 3 || len(s.Counters) != 0 {
		t.Errorf("calls %d, unavailable %+v, counters %d: want every source unavailable", calls.Load(), s.Unavailable, len(s.Counters))
	}
}

// TestSharedInterruptsReadOnce checks that the interrupt counters and the
// NIC IRQ names of one snapshot come from one read of /proc/interrupts,
// and that a Reading not made by NewReading still reads the file.
func TestSharedInterruptsReadOnce(t *testing.T) {
	fs := fixture("linux-6.18")
	r := NewReading(fs)
	a, err := r.interruptsText()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r.interruptsText()
	if &a[0] != &b[0] {
		t.Error("two reads of /proc/interrupts in one snapshot")
	}
	alone, err := (&Reading{FS: fs}).interruptsText()
	if err != nil || string(alone) != string(a) {
		t.Errorf("outside a snapshot: err %v, same text %v", err, string(alone) == string(a))
	}
	if _, err := NewReading(NewFS(t.TempDir())).interruptsText(); err == nil {
		t.Error("missing /proc/interrupts read without error")
	}
}

func TestReadSysctlAt(t *testing.T) {
	fs := fixture("linux-6.18")
	buf := make([]byte, maxSysctl)
	dir, err := fs.openDir(fs.ProcPath("sys"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeFD(dir) })
	for i, name := range SysctlNames {
		want, err := readSource(fs, ProcSys, fs.ProcPath("sys", sysctlPaths()[i]), parseSysctl)
		got, gotErr := readSysctlAt(dir, sysctlPaths()[i], fs.ProcPath("sys"), sysctlPaths()[i], name, buf)
		if want != got || (err == nil) != (gotErr == nil) {
			t.Errorf("%s: got %q, %v; readSource gives %q, %v", name, got, gotErr, want, err)
		}
	}
}

// TestSNMPCounters checks that counters made from a scratch-buffer name
// are those made field by field with LookupCounter, also when a group's
// header changes between two reads (IcmpMsg gains a field with a new
// message type).
func TestSNMPCounters(t *testing.T) {
	byField := func(source SourceID, vs []snmpValue) []Counter {
		var out []Counter
		for _, v := range vs {
			name := v.Name()
			fi, _ := LookupCounter(source, name)
			out = append(out, Counter{Source: source, Field: name, Value: v.Value, Stage: fi.Stage, Gauge: fi.Gauge})
		}
		return out
	}
	reads := []string{
		"IcmpMsg: InType3 OutType3\nIcmpMsg: 5 6\nUdp: InDatagrams RcvbufErrors\nUdp: 1 2\n",
		"IcmpMsg: InType3 OutType3\nIcmpMsg: 7 8\nUdp: InDatagrams RcvbufErrors\nUdp: 3 4\n",
		"IcmpMsg: InType0 InType3 OutType3\nIcmpMsg: 1 9 10\nUdp: InDatagrams RcvbufErrors\nUdp: 5 6\n",
		"IcmpMsg: InType3 OutType0\nIcmpMsg: 11 12\nUdp: InDatagrams RcvbufErrors\nUdp: 7 8\n",
	}
	for i, in := range reads {
		vs, err := parseSNMP(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		want := byField(ProcNetSNMP, vs)
		if diff := cmp.Diff(want, snmpCounters(ProcNetSNMP, vs)); diff != "" {
			t.Errorf("read %d (-field by field +snmpCounters):\n%s", i, diff)
		}
	}
	// The same group name in another file is another entry.
	vs := []snmpValue{{Group: "Udp", Field: "InDatagrams", Value: 1}}
	if got := snmpCounters(ProcNetNetstat, vs); got[0].Source != ProcNetNetstat || got[0].Field != "Udp:InDatagrams" {
		t.Errorf("netstat counter = %+v", got[0])
	}
}

func TestCPUName(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 4095} {
		if got, want := cpuName(n), fmt.Sprintf("cpu%d", n); got != want {
			t.Errorf("cpuName(%d) = %q, want %q", n, got, want)
		}
	}
}

// sizedSource adds as many counters as its current size says.
type sizedSource struct {
	name SourceID
	size *int
}

func (s sizedSource) ID() SourceID { return s.name }
func (s sizedSource) Collect(_ context.Context, r *Reading, snap *Snapshot) error {
	for i := 0; i < *s.size; i++ {
		snap.Add(Counter{Source: s.name, Field: fmt.Sprint(i), Value: uint64(i)})
	}
	return nil
}

// TestCollectMergeOrder runs the parallel path repeatedly while the
// sources change how much they give, and checks every merge against the
// sources' order.
func TestCollectMergeOrder(t *testing.T) {
	sizes := []int{3, 0, 5, 2}
	var srcs []Source
	for i := range sizes {
		srcs = append(srcs, sizedSource{SourceID(fmt.Sprintf("test-inplace-%d", i)), &sizes[i]})
	}
	rounds := [][]int{{3, 0, 5, 2}, {3, 0, 5, 2}, {1, 4, 5, 0}, {6, 6, 1, 2}, {6, 6, 1, 2}, {0, 0, 0, 0}, {2, 1, 2, 1}}
	for r, round := range rounds {
		copy(sizes, round)
		s := Collect(context.Background(), Options{Sources: srcs, Workers: 2, Enter: func(fn func() error) error { return fn() }})
		var want, got []string
		for i, n := range round {
			for j := 0; j < n; j++ {
				want = append(want, fmt.Sprintf("test-inplace-%d %d", i, j))
			}
		}
		for _, c := range s.Counters {
			got = append(got, string(c.Source)+" "+c.Field)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round %d %v (-want +got):\n%s", r, round, diff)
		}
	}
}

// irqNamesByFields is parseIRQNames as it was written first, splitting
// every line: the reference for the line filter.
func irqNamesByFields(in string) map[int]string {
	out := map[int]string{}
	lines := strings.Split(strings.TrimSuffix(in, "\n"), "\n")
	if len(lines) == 0 {
		return out
	}
	cpus := len(strings.Fields(lines[0]))
	for _, line := range lines[1:] {
		f := strings.Fields(strings.TrimSuffix(line, "\r"))
		if len(f) == 0 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		irq, err := strconv.Atoi(strings.TrimSuffix(f[0], ":"))
		if err != nil || len(f) < 1+cpus+3 {
			continue
		}
		out[irq] = f[len(f)-1]
	}
	return out
}

func FuzzIRQLabelLine(f *testing.F) {
	f.Add("           CPU0       CPU1\n  37:          0          0  PCI-MSIX-0000:00:03.0   0-edge      virtio2-config\n NMI:          0          0   Non-maskable interrupts\n")
	f.Add("CPU0\n-5: 1 a b c\n+7: 1 a b c\n\u00a08: 1 a b c\n")
	f.Fuzz(func(t *testing.T, in string) {
		if !strings.HasPrefix(strings.TrimSpace(in), "CPU") || strings.ContainsRune(in, '\r') {
			return
		}
		got, err := parseIRQNames(strings.NewReader(in))
		if err != nil {
			return
		}
		if diff := cmp.Diff(irqNamesByFields(in), got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("(-splitting every line +parseIRQNames):\n%s", diff)
		}
	})
}

// TestMergeNICEveryField checks that mergeNIC fills every field of NIC,
// so a field added to NIC cannot be lost when ethtool and the sysfs
// layout each fill part of one interface, and that it leaves set fields
// alone.
func TestMergeNICEveryField(t *testing.T) {
	full := func(seed int) NIC {
		var n NIC
		v := reflect.ValueOf(&n).Elem()
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString(fmt.Sprintf("%s-%d", v.Type().Field(i).Name, seed))
			case reflect.Int, reflect.Int64:
				f.SetInt(int64(seed*100 + i))
			case reflect.Uint32, reflect.Uint64:
				f.SetUint(uint64(seed*100 + i))
			case reflect.Bool:
				f.SetBool(true)
			case reflect.Slice:
				f.Set(reflect.MakeSlice(f.Type(), 1, 1))
				if e := f.Index(0); e.Kind() == reflect.String {
					e.SetString(fmt.Sprint(seed))
				} else {
					e.Field(0).SetInt(int64(seed))
				}
			default:
				t.Fatalf("NIC.%s: kind %s not filled by this test", v.Type().Field(i).Name, f.Kind())
			}
		}
		return n
	}
	src := full(1)
	var dst NIC
	mergeNIC(&dst, src)
	if diff := cmp.Diff(src, dst); diff != "" {
		t.Errorf("into an empty NIC (-src +merged):\n%s", diff)
	}
	set := full(2)
	dst = set
	mergeNIC(&dst, src)
	if diff := cmp.Diff(set, dst); diff != "" {
		t.Errorf("into a full NIC (-before +merged):\n%s", diff)
	}
}
