package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The test binary re-executes itself as the shmring peer process.
const peerEnv = "NETDROP_BENCH_TEST_PEER"

func TestMain(m *testing.M) {
	if v := os.Getenv(peerEnv); v != "" {
		f := strings.Split(v, ",")
		cpu, _ := strconv.Atoi(f[2])
		spin, _ := time.ParseDuration(f[3])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		err := ServeShmPeer(ctx, f[0], f[1], PeerOptions{ReportCPU: true, CPU: cpu, Spin: spin})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "shmring peer:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testPeer(toPeer, fromPeer string, po PeerOptions) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+toPeer+","+fromPeer+","+strconv.Itoa(po.CPU)+","+po.Spin.String())
	return cmd
}

func shmDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return t.TempDir()
}

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "64,1K,16K,64K,1M", want: []int{64, 1024, 16384, 65536, 1 << 20}},
		{in: " 1 , 2k,3M ", want: []int{1, 2048, 3 << 20}},
		{in: "1G", want: []int{1 << 30}},
		{in: "", err: true},
		{in: "0", err: true},
		{in: "-5", err: true},
		{in: "12Q", err: true},
		{in: "K", err: true},
		{in: "99999999999M", err: true},
	} {
		got, err := ParseSizes(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseSizes(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseSizes(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func FuzzParseSizes(f *testing.F) {
	for _, s := range []string{"64,1K,16K", "1M", ",,", "5g", "-1k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sizes, err := ParseSizes(s)
		if err != nil {
			return
		}
		for _, n := range sizes {
			if n < 1 {
				t.Fatalf("ParseSizes(%q) returned %d", s, n)
			}
			if back, err := ParseSizes(FormatSize(n)); err != nil || back[0] != n {
				t.Fatalf("FormatSize(%d) = %q does not parse back: %v %v", n, FormatSize(n), back, err)
			}
		}
	})
}

func TestBreakEvens(t *testing.T) {
	r := []Result{
		{Transport: TCP, Size: 64, GBps: 0.1, P50: 20},
		{Transport: TCP, Size: 1024, GBps: 1, P50: 20},
		{Transport: TCP, Size: 65536, GBps: 2, P50: 40},
		// sendfile loses at 64 and 1K, wins at 64K: one throughput crossing.
		{Transport: Sendfile, Size: 64, GBps: 0.05, P50: 25},
		{Transport: Sendfile, Size: 1024, GBps: 0.5, P50: 25},
		{Transport: Sendfile, Size: 65536, GBps: 3, P50: 45},
		// failed sizes are ignored.
		{Transport: ZeroCopy, Size: 64, Error: "boom"},
	}
	got := breakEvens(r, TCP)
	want := []BreakEven{{Metric: "throughput", Faster: Sendfile, Slower: TCP, Size: 4096, Lo: 1024, Hi: 65536}}
	// d0 = -0.5, d1 = +1: crossing a third of the way in log2 from 2^10 to 2^16: 2^12.
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("breakEvens (-want +got):\n%s", d)
	}
}

// TestRunAll measures every transport briefly, with the shmring peer in a
// separate process, and checks each produced sane figures.
func TestRunAll(t *testing.T) {
	var progress []string
	r, err := Run(context.Background(), Options{
		Sizes:    []int{64, 16 << 10},
		Duration: 40 * time.Millisecond,
		ShmPeer:  testPeer,
		ShmDir:   shmDir(t),
		Progress: func(done, total int, what string) {
			progress = append(progress, fmt.Sprintf("%d/%d %s", done, total, what))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(r.Results), len(Transports)*2; got != want {
		t.Fatalf("%d results, want %d", got, want)
	}
	for _, res := range r.Results {
		if res.Error != "" {
			if res.Transport == ZeroCopy && strings.Contains(res.Error, "not supported") {
				t.Logf("%s: %s", res.Transport, res.Error)
				continue
			}
			t.Errorf("%s %d: %s", res.Transport, res.Size, res.Error)
			continue
		}
		if res.GBps <= 0 || res.MsgsPerSec <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.RoundTrips == 0 || res.CPUPerGB <= 0 {
			t.Errorf("%s %d: implausible figures %+v", res.Transport, res.Size, res)
		}
		if res.Transport == ZeroCopy {
			// Loopback: the kernel copies every MSG_ZEROCOPY send.
			if res.ZCSends == 0 || res.ZCCopied != 1 {
				t.Errorf("zerocopy %d: %d completions, copied share %v; want > 0 and 1 on loopback", res.Size, res.ZCSends, res.ZCCopied)
			}
		}
		if (res.Transport == Shmring || res.Transport == ShmringFutex) && res.Note != "peer in another process" {
			t.Errorf("shmring note %q", res.Note)
		}
	}
	if want := fmt.Sprintf("%d/%d done", 4*len(Transports), 4*len(Transports)); progress[len(progress)-1] != want {
		t.Errorf("last progress %q, want %q", progress[len(progress)-1], want)
	}
	var svg bytes.Buffer
	if err := WritePlot(&svg, r); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg.Bytes(), len(Transports))
}

func checkSVG(t *testing.T, b []byte, series int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	paths := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("plot is not well-formed XML: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "path" {
			paths++
		}
	}
	if paths < series { // one per transport per panel, less failed ones
		t.Errorf("plot has %d paths, want at least %d", paths, series)
	}
}

func TestPlotBreakEvenMarks(t *testing.T) {
	r := &Report{Kernel: "6.18", CPUs: 2, Duration: "1s", Sizes: []int{64, 1024, 65536}, Results: []Result{
		{Transport: TCP, Size: 64, GBps: 0.1, P50: 20},
		{Transport: TCP, Size: 1024, GBps: 1, P50: 20},
		{Transport: TCP, Size: 65536, GBps: 2, P50: 40},
		{Transport: Sendfile, Size: 64, GBps: 0.05, P50: 25},
		{Transport: Sendfile, Size: 1024, GBps: 0.5, P50: 25},
		{Transport: Sendfile, Size: 65536, GBps: 3, P50: 45},
	}}
	r.BreakEven = breakEvens(r.Results, TCP)
	var svg bytes.Buffer
	if err := WritePlot(&svg, r); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg.Bytes(), 4)
	for _, want := range []string{"sendfile overtakes tcp above ≈4K", `stroke-dasharray="4 3"`} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("plot lacks %q", want)
		}
	}
}

func TestRatiosAndApproxSize(t *testing.T) {
	got := ratios([]Result{
		{Transport: TCP, Size: 64, P50: 10, MsgsPerSec: 1e5},
		{Transport: Shmring, Size: 64, P50: 0.2, MsgsPerSec: 2e7},
		{Transport: Shmring, Size: 1024, P50: 1, MsgsPerSec: 1e6}, // no tcp at 1K
		{Transport: TCP, Size: 4096, Error: "x"},
		{Transport: Shmring, Size: 4096, P50: 1, MsgsPerSec: 1e6},
	})
	if d := cmp.Diff([]Ratio{{Size: 64, Latency: 50, Throughput: 200}}, got); d != "" {
		t.Errorf("ratios (-want +got):\n%s", d)
	}
	for in, want := range map[float64]string{100: "100", 999: "999", 4096: "4K", 18820: "18K", 296000: "289K", 1.5 * (1 << 20): "1.5M"} {
		if got := ApproxSize(in); got != want {
			t.Errorf("ApproxSize(%v) = %q, want %q", in, got, want)
		}
	}
}
