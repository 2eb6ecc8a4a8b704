package exporter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/netns"
	"github.com/netdrop/netdrop/internal/testnet"
)

// BenchmarkAgentCost measures what `netdrop exporter --trace` costs the
// host it watches, as a deployed agent runs: the built binary watching a
// namespace of about 10,000 TCP sockets, scraped every 15 s.
//
//   - cpu-share: the exporter's CPU time (user + system, from
//     /proc/PID/stat) over NETDROP_AGENT_SPAN (default 30 s) of scrapes every
//     NETDROP_AGENT_INTERVAL (default 15 s), as a share of one core; also the
//     CPU of one scrape and of the idle agent between scrapes.
//   - peak RSS (VmHWM) after the scrapes.
//   - under a drop storm (a UDP flood into an nft DROP rule in the watched
//     namespace, kernel.bpf_stats_enabled on for it and restored), the
//     tracer's cost as a share of one core: the BPF program's run time (its
//     prog_id taken from the exporter's own fds) plus the exporter's CPU,
//     over the storm's wall time; and per drop, scaled to 1M drops/s. The
//     kernel's run-time accounting adds two clock reads per run, so this
//     over-states the program a little.
//
// Run it as root:
//
//	go test ./internal/exporter -run '^$' -bench AgentCost -benchtime 1x
func BenchmarkAgentCost(b *testing.B) {
	testnet.RequireRoot(b)
	testnet.RequireTool(b, "nft")
	span, interval := 30*time.Second, 15*time.Second
	if v, err := time.ParseDuration(os.Getenv("NETDROP_AGENT_SPAN")); err == nil && v > 0 {
		span = v
	}
	if v, err := time.ParseDuration(os.Getenv("NETDROP_AGENT_INTERVAL")); err == nil && v > 0 {
		interval = v
	}
	bin := filepath.Join(b.TempDir(), "netdrop")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../../cmd/netdrop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	p := testnet.NewPair(b, "agent")
	n := make10kSockets(b, p)
	testnet.In(b, p.B, "nft", "add", "table", "inet", "ndagent")
	testnet.In(b, p.B, "nft", "add", "chain", "inet", "ndagent", "in", "{ type filter hook input priority 0 ; }")
	testnet.In(b, p.B, "nft", "add", "rule", "inet", "ndagent", "in", "udp", "dport", "7791", "counter", "drop")

	ready := filepath.Join(b.TempDir(), "ready")
	agent := exec.Command(bin, "exporter", "--trace", "--netns", p.B, "--listen", "127.0.0.1:0", "--ready-file", ready)
	var stderr bytes.Buffer
	agent.Stderr = &stderr
	if err := agent.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = agent.Process.Signal(unix.SIGTERM)
		_ = agent.Wait()
	})
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("exporter not ready after 20 s:\n%s", stderr.String())
		}
		if data, err := os.ReadFile(ready); err == nil {
			addr = strings.TrimSpace(string(data))
		}
	}
	pid := agent.Process.Pid
	scrape := func() {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("scrape: %s", resp.Status)
		}
	}
	scrape() // the first scrape builds what later ones reuse

	var sb strings.Builder
	for i := 0; i < b.N; i++ {
		// The idle agent: no scrape for one interval's worth of seconds.
		idleSpan := min(interval, 5*time.Second)
		c0 := procCPU(b, pid)
		time.Sleep(idleSpan)
		idle := procCPU(b, pid) - c0

		// Scrapes alone, back to back.
		const k = 5
		c0 = procCPU(b, pid)
		t0 := time.Now()
		for j := 0; j < k; j++ {
			scrape()
		}
		perScrape, scrapeWall := (procCPU(b, pid)-c0)/k, time.Since(t0)/k

		// The agent as deployed: scrapes every interval over span.
		c0, t0 = procCPU(b, pid), time.Now()
		for next := t0; time.Since(t0) < span; next = next.Add(interval) {
			time.Sleep(time.Until(next))
			scrape()
		}
		time.Sleep(time.Until(t0.Add(span)))
		share := float64(procCPU(b, pid)-c0) / float64(time.Since(t0))
		hwm, rss := procMemKB(b, pid, "VmHWM:"), procMemKB(b, pid, "VmRSS:")
		anon, file := procMemKB(b, pid, "RssAnon:"), procMemKB(b, pid, "RssFile:")

		// The drop storm.
		storm := dropStorm(b, p, pid, netip.AddrPortFrom(netip.AddrFrom4([4]byte(p.AddrB.To4())), 7791), 5*time.Second)

		b.ReportMetric(100*share, "cpu-%-of-core")
		b.ReportMetric(float64(hwm)/1024, "peak-rss-MiB")
		b.ReportMetric(100*storm.share, "storm-cpu-%-of-core")
		b.ReportMetric(storm.nsPerDrop, "storm-ns/drop")
		fmt.Fprintf(&sb, "\nnetdrop exporter --trace, %d TCP sockets in the watched namespace, a scrape every %s over %s:\n", n, interval, span)
		fmt.Fprintf(&sb, "  CPU %.3f%% of one core (goal < 0.5%%): a scrape %.1f ms CPU (%.1f ms wall), idle %.2f ms CPU per s\n",
			100*share, ms(perScrape), ms(scrapeWall), ms(idle)/idleSpan.Seconds())
		fmt.Fprintf(&sb, "  RSS %.1f MiB now (%.1f MiB anonymous: Go heap and runtime; %.1f MiB the binary's pages), peak %.1f MiB (goal < 40 MB)\n",
			float64(rss)/1024, float64(anon)/1024, float64(file)/1024, float64(hwm)/1024)
		fmt.Fprintf(&sb, "drop storm: %.0f drops/s for %s: BPF program %.0f ns/drop, exporter %.2f ms CPU\n",
			storm.rate, storm.wall.Round(time.Millisecond), storm.progNsPerDrop, ms(storm.agentCPU))
		fmt.Fprintf(&sb, "  tracer cost %.2f%% of one core at this rate; %.0f ns/drop, so %.2f%% of a core at 1M drops/s (goal < 3%%)\n",
			100*storm.share, storm.nsPerDrop, storm.nsPerDrop*1e6/1e9*100)
	}
	b.Log(sb.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// procCPU is the user + system time of process pid and all its threads.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which may hold spaces: utime and
	// stime are fields 14 and 15 of proc_pid_stat(5).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	const hz = 100 // USER_HZ, the unit of /proc/PID/stat on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// procMemKB reads one "Vm…:  N kB" line of /proc/PID/status.
func procMemKB(b *testing.B, pid int, key string) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb
			}
		}
	}
	b.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

type stormCost struct {
	rate          float64 // drops per second
	wall          time.Duration
	progNsPerDrop float64
	agentCPU      time.Duration
	share         float64 // (program run time + agent CPU) / wall
	nsPerDrop     float64 // the same per drop
}

// dropStorm floods dst from p.A for d with run-time statistics of BPF
// programs on, and returns what the tracer of process pid cost meanwhile.
func dropStorm(b *testing.B, p *testnet.Pair, pid int, dst netip.AddrPort, d time.Duration) stormCost {
	b.Helper()
	const knob = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(knob)
	if err != nil {
		b.Skipf("no %s: %v", knob, err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = os.WriteFile(knob, old, 0o644) }()
	prog := tracerProgram(b, pid)
	defer prog.Close()
	run0, cnt0 := progStats(b, prog)
	cpu0, t0 := procCPU(b, pid), time.Now()
	sent := flood(b, p.A, dst, d)
	wall := time.Since(t0)
	run1, cnt1 := progStats(b, prog)
	agentCPU := procCPU(b, pid) - cpu0
	drops := cnt1 - cnt0
	if drops == 0 {
		b.Fatalf("the tracer ran for none of the %d datagrams sent", sent)
	}
	progTime := run1 - run0
	total := float64(progTime + agentCPU)
	return stormCost{
		rate:          float64(drops) / wall.Seconds(),
		wall:          wall,
		progNsPerDrop: float64(progTime) / float64(drops),
		agentCPU:      agentCPU,
		share:         total / float64(wall),
		nsPerDrop:     total / float64(drops),
	}
}

// tracerProgram opens the BPF program the exporter pid holds, found by
// the prog_id its file descriptors show in /proc/PID/fdinfo: programs of
// other processes on the host are not counted.
func tracerProgram(b *testing.B, pid int) *ebpf.Program {
	b.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			v, ok := strings.CutPrefix(line, "prog_id:")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				continue
			}
			prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if err != nil {
				continue
			}
			if info, err := prog.Info(); err == nil && strings.HasPrefix(info.Name, "kfree_skb") {
				return prog
			}
			prog.Close()
		}
	}
	b.Fatalf("exporter %d holds no kfree_skb program", pid)
	return nil
}

// progStats returns the program's accumulated run time and run count.
func progStats(b *testing.B, prog *ebpf.Program) (time.Duration, uint64) {
	b.Helper()
	st, err := prog.Stats()
	if err != nil {
		b.Skipf("this kernel reports no BPF run-time statistics: %v", err)
	}
	return st.Runtime, st.RunCount
}

// flood sends 64-byte UDP datagrams from namespace ns to dst, 64 per
// sendmmsg, for d, and returns how many the kernel took.
func flood(b *testing.B, ns string, dst netip.AddrPort, d time.Duration) int {
	b.Helper()
	sent := 0
	err := netns.Do(ns, func() error {
		c, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return err
		}
		defer c.Close()
		pc := ipv4.NewPacketConn(c)
		ua := net.UDPAddrFromAddrPort(dst)
		payload := make([]byte, 64)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i] = ipv4.Message{Buffers: [][]byte{payload}, Addr: ua}
		}
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		for ctx.Err() == nil {
			k, err := pc.WriteBatch(msgs, 0)
			if err == nil {
				sent += k
			}
		}
		return nil
	})
	if err != nil {
		b.Fatalf("flood %s from %s: %v", dst, ns, err)
	}
	return sent
}
