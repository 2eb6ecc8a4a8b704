package exporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
)

// serveExporter serves an exporter for opts on a loopback port and returns
// its address.
func serveExporter(t testing.TB, opts Options) string {
	t.Helper()
	reg, _, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(reg, opts), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query against Prometheus's HTTP API.
func promQuery(t testing.TB, base, q string) []promResult {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if out.Status != "success" {
		t.Fatalf("query %s: %s", q, out.Error)
	}
	return out.Data.Result
}

func value(t testing.TB, r promResult) float64 {
	t.Helper()
	s, _ := r.Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("sample %v: %v", r.Value, err)
	}
	return v
}

// waitFor polls cond every 200 ms until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// TestPrometheusEndToEnd runs the Debian prometheus server on loopback,
// scraping the exporter (watching a test namespace) every second while a
// UDP receiver in that namespace overflows its receive buffer, and asks
// Prometheus for the drop rate per stage. The total Prometheus holds for
// socket-rcvbuf must equal nstat's UdpRcvbufErrors in the namespace.
func TestPrometheusEndToEnd(t *testing.T) {
	testnet.RequireRoot(t)
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs the prometheus server (Debian package prometheus)")
	}
	testnet.RequireTool(t, "nstat")
	p := testnet.NewPair(t, "exp")
	target := serveExporter(t, Options{Netns: netns.Named(p.B)})

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: netdrop
    static_configs:
      - targets: [%q]
`, filepath.Join(mustAbs(t, "../../deploy/prometheus"), "netdrop-rules.yml"), target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	web := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prom,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web,
		"--log.level=warn")
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	base := "http://" + web
	waitFor(t, "prometheus ready", 8*time.Second, func() bool {
		r, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	// The first scrape sets the baseline; the fault starts after it.
	// Prometheus hands new targets to the scrape manager at most every
	// 5 s (the discovery manager's update throttle), hence the wait.
	t.Cleanup(func() {
		if t.Failed() {
			r, err := http.Get(base + "/api/v1/targets")
			if err == nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				t.Logf("targets: %s", b)
			}
		}
	})
	waitFor(t, "a first scrape", 10*time.Second, func() bool {
		return len(promQuery(t, base, `netdrop_stage_drops_total{stage="socket-rcvbuf"}`)) == 1
	})

	before := testnet.Nstat(t, p.B, "UdpRcvbufErrors")
	rx := testnet.ListenUDP(t, p.B, fmt.Sprintf("%s:5353", p.AddrB))
	if err := rx.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	// 8 bursts of 200 datagrams, 250 ms apart: the loss spans several
	// scrapes. Nobody reads, so all but the first few are dropped.
	for i := 0; i < 8; i++ {
		testnet.SendUDP(t, p.A, fmt.Sprintf("%s:5353", p.AddrB), 200, 512)
		time.Sleep(250 * time.Millisecond)
	}
	ref := testnet.Nstat(t, p.B, "UdpRcvbufErrors") - before
	if ref == 0 {
		t.Fatal("the fault made no UdpRcvbufErrors")
	}
	q := `netdrop_stage_drops_total{stage="socket-rcvbuf"}`
	var got float64
	waitFor(t, fmt.Sprintf("Prometheus to hold %d socket-rcvbuf drops", ref), 6*time.Second, func() bool {
		r := promQuery(t, base, q)
		if len(r) != 1 {
			return false
		}
		got = value(t, r[0])
		return got >= float64(ref)
	})
	if got != float64(ref) {
		t.Errorf("%s = %v, nstat UdpRcvbufErrors moved %d", q, got, ref)
	}
	// The rate is seen at the right stage: of the stages this namespace
	// owns, socket-rcvbuf had the highest drop rate during the fault.
	// Host-wide stages (NIC, rings, softirq backlog) see every namespace
	// of the host, including other tests running meanwhile, so they are
	// left out of the comparison.
	top := promQuery(t, base, `topk(1, max_over_time(rate(netdrop_stage_drops_total{stage!~"nic|rx-ring|softirq|tx-ring"}[3s])[30s:1s]))`)
	if len(top) != 1 || top[0].Metric["stage"] != "socket-rcvbuf" || value(t, top[0]) <= 0 {
		t.Errorf("highest drop rate: %+v, want stage socket-rcvbuf > 0", top)
	}
	rate := promQuery(t, base, `max_over_time(netdrop:stage_drops:rate5m{stage="socket-rcvbuf"}[30s])`)
	if len(rate) != 1 || value(t, rate[0]) <= 0 {
		t.Errorf("recording rule netdrop:stage_drops:rate5m for socket-rcvbuf: %+v", rate)
	}
	t.Logf("nstat UdpRcvbufErrors +%d; Prometheus socket-rcvbuf total %v, peak rate %v/s", ref, got, top[0].Value[1])
}

func mustAbs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// BenchmarkScrape10kSockets measures one full scrape (every collector, the
// real kernel) of a namespace holding about 10,000 TCP sockets, against
// the reference: ss dumping the same namespace's sockets with memory info.
func BenchmarkScrape10kSockets(b *testing.B) {
	testnet.RequireRoot(b)
	p := testnet.NewPair(b, "expb")
	n := make10kSockets(b, p)
	b.Logf("namespace %s holds %d TCP sockets", p.B, n)
	b.Run("exporter", func(b *testing.B) {
		reg, _, err := NewRegistry(Options{Netns: netns.Named(p.B)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sockets-only", func(b *testing.B) {
		sc := newSocketsCollector(New(Options{Netns: netns.Named(p.B)}))
		ch := make(chan prometheus.Metric, 1024)
		go func() {
			for range ch {
			}
		}()
		for i := 0; i < b.N; i++ {
			if err := sc.update(context.Background(), &scrape{}, ch); err != nil {
				b.Fatal(err)
			}
		}
		close(ch)
	})
	b.Run("ss-reference", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := exec.Command("ip", "netns", "exec", p.B, "ss", "-tanm").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// make10kSockets opens 4000 loopback connections inside p.B (8000 sockets
// and a listener) and 2000 more that the client closes first (2000
// TIME_WAIT). Everything closes with the namespace.
func make10kSockets(b *testing.B, p *testnet.Pair) int {
	b.Helper()
	var ln net.Listener
	if err := netns.Do(p.B, func() error {
		var err error
		ln, err = net.Listen("tcp4", "127.0.0.1:9000")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var conns []net.Conn
	accepted := make(chan net.Conn, 8192)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	err := netns.Do(p.B, func() error {
		for i := 0; i < 6000; i++ {
			c, err := net.Dial("tcp4", "127.0.0.1:9000")
			if err != nil {
				return err
			}
			if i < 4000 {
				conns = append(conns, c)
			} else {
				c.Close()
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// Drain the accepted side: keep the first 4000, close the rest after
	// the clients did, so the TIME_WAIT is on the client side.
	kept := 0
	deadline := time.After(10 * time.Second)
	for kept < 6000 {
		select {
		case c := <-accepted:
			if kept < 4000 {
				conns = append(conns, c)
			} else {
				c.Close()
			}
			kept++
		case <-deadline:
			b.Fatalf("accepted only %d of 6000", kept)
		}
	}
	time.Sleep(200 * time.Millisecond)
	out := testnet.In(b, p.B, "ss", "-tanH")
	return countLines(out)
}

func countLines(s string) int {
	n := 0
	for _, c := range s {
		if c == '\n' {
			n++
		}
	}
	return n
}
