package fleet_test

import (
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/cli"
	"github.com/netdrop/netdrop/internal/exporter"
	"github.com/netdrop/netdrop/internal/fleet"
	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/stage"
)

// serve runs an in-process exporter watching namespace ns on a loopback
// port, as `netdrop exporter --netns ns` would, and returns its address.
func serve(t *testing.T, ns string) string {
	t.Helper()
	opts := exporter.Options{Netns: netns.Named(ns)}
	reg, _, err := exporter.NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: exporter.Handler(reg, opts), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startPrometheus runs the Debian prometheus server on loopback with a
// temporary configuration and storage, scraping targets every second with
// a node label each, and returns its base URL.
func startPrometheus(t *testing.T, targets map[string]string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the prometheus server is not installed (Debian package prometheus, installed by .ci/run)")
		}
		t.Skip("needs the prometheus server (apt-get install prometheus)")
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: netdrop\n    static_configs:\n")
	for target, node := range targets {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {node: %q}\n", target, node)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web,
		"--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + web
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			if r, err := http.Get(base + "/api/v1/targets"); err == nil {
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				t.Logf("targets: %s", b)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	})
	waitFor(t, "prometheus ready", 10*time.Second, func() bool {
		r, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	return base
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// instant runs a query through the API and returns the number of series
// and the value of the first.
func instant(t *testing.T, base, q string) (int, float64) {
	t.Helper()
	r, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Data.Result) == 0 {
		return 0, 0
	}
	var v float64
	fmt.Sscan(out.Data.Result[0].Value[1].(string), &v)
	return len(out.Data.Result), v
}

// TestFleetNamesTheFaultyNode runs a real Prometheus scraping three
// exporters, each watching its own network namespace; one namespace holds a
// UDP receiver with a 4 KiB buffer that nobody reads, flooded. netdrop fleet
// must rank that exporter's socket-rcvbuf first, with the drops nstat counts
// there (UdpRcvbufErrors), and nothing at that stage on the two others.
func TestFleetNamesTheFaultyNode(t *testing.T) {
	testnet.RequireRoot(t)
	testnet.RequireTool(t, "nstat")
	pairs := []*testnet.Pair{testnet.NewPair(t, "flt"), testnet.NewPair(t, "flt"), testnet.NewPair(t, "flt")}
	targets := map[string]string{}
	var addrs []string
	for i, p := range pairs {
		a := serve(t, p.B)
		addrs = append(addrs, a)
		targets[a] = fmt.Sprintf("node-%c", 'a'+i)
	}
	faulty := pairs[1]
	base := startPrometheus(t, targets)
	// Prometheus hands new targets to its scrape manager at most every
	// 5 s; the fault starts after every exporter's first scrape.
	waitFor(t, "a first scrape of the three exporters", 15*time.Second, func() bool {
		n, _ := instant(t, base, `netdrop_stage_drops_total{stage="socket-rcvbuf"}`)
		return n == 3
	})

	before := testnet.Nstat(t, faulty.B, "UdpRcvbufErrors")
	dst := fmt.Sprintf("%s:5353", faulty.AddrB)
	rx := testnet.ListenUDP(t, faulty.B, dst)
	if err := rx.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	// 8 bursts of 200 datagrams over 2 s: the loss spans several scrapes.
	for range 8 {
		testnet.SendUDP(t, faulty.A, dst, 200, 512)
		time.Sleep(250 * time.Millisecond)
	}
	ref := float64(testnet.Nstat(t, faulty.B, "UdpRcvbufErrors") - before)
	if ref == 0 {
		t.Fatal("the flood made no UdpRcvbufErrors")
	}
	waitFor(t, "Prometheus to hold the flood's drops", 8*time.Second, func() bool {
		_, v := instant(t, base, fmt.Sprintf(`netdrop_stage_drops_total{stage="socket-rcvbuf",instance=%q}`, addrs[1]))
		return v >= ref
	})

	r, err := fleet.Query(context.Background(), fleet.Options{URL: base, Range: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Nodes) != 3 {
		t.Errorf("nodes reporting: %v, want the 3 exporters", r.Nodes)
	}
	if len(r.Rows) == 0 {
		t.Fatalf("no rows; report %+v", r)
	}
	top := r.Rows[0]
	// increase() extrapolates to the end of the range, at most about one
	// scrape interval over the series' life: a few percent above the
	// kernel's count, never below it.
	if top.Node != addrs[1] || top.Stage != stage.SocketRcvbuf || top.Drops < ref || top.Drops > ref*1.15 || top.Severity != fleet.SeverityCritical {
		t.Errorf("worst row %+v; want %s socket-rcvbuf, critical, %v drops (nstat UdpRcvbufErrors) up to 15%% more", top, addrs[1], ref)
	}
	for _, row := range r.Rows {
		if row.Node != addrs[1] && row.Stage == stage.SocketRcvbuf {
			t.Errorf("a healthy exporter has a socket-rcvbuf row: %+v", row)
		}
	}
	if !r.AtLeastWarning() {
		t.Error("a critical finding in the range, but AtLeastWarning is false")
	}
	t.Logf("nstat UdpRcvbufErrors +%v; fleet: %s %s %.1f drops (%s)", ref, top.Node, top.Stage, top.Drops, top.Severity)

	// The command, as a user runs it: --node-label picks the node name,
	// --json is the same report, the exit code says a node is critical,
	// and every command printed is valid shell.
	var stdout, stderr bytes.Buffer
	code := cli.Main(context.Background(), []string{"fleet", "--prometheus", base, "--range", "1m", "--node-label", "node", "--json"}, &stdout, &stderr)
	if code != cli.ExitFindings {
		t.Errorf("fleet --json exit %d, want %d (a critical node); stderr %s", code, cli.ExitFindings, stderr.String())
	}
	var jr fleet.Report
	if err := json.Unmarshal(stdout.Bytes(), &jr); err != nil {
		t.Fatalf("fleet --json: %v\n%s", err, stdout.String())
	}
	if len(jr.Rows) == 0 || jr.Rows[0].Node != "node-b" || jr.Rows[0].Stage != stage.SocketRcvbuf {
		t.Errorf("fleet --node-label node --json: rows %+v, want node-b socket-rcvbuf first", jr.Rows)
	}
	stdout.Reset()
	cli.Main(context.Background(), []string{"fleet", "--prometheus", base, "--range", "1m", "--node-label", "node"}, &stdout, &stderr)
	text := stdout.String()
	if !strings.Contains(text, "ssh node-b netdrop diagnose") || !strings.Contains(text, "ssh node-b netdrop counters --stage socket-rcvbuf --nonzero") {
		t.Errorf("fleet text lacks the commands for node-b:\n%s", text)
	}
	for _, row := range jr.Rows {
		for _, c := range row.Run {
			if out, err := exec.Command("bash", "-n", "-c", c).CombinedOutput(); err != nil {
				t.Errorf("printed command %q is not valid shell: %v %s", c, err, out)
			}
		}
	}
	t.Logf("netdrop fleet:\n%s", text)
}
