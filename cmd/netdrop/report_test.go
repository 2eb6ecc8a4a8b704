package main_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/lab"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/netdrop/netdrop/internal/testnet"
	"github.com/netdrop/netdrop/stage"
)

// TestRecordDiagnoseReportChromium is the recording's whole way on a real
// fault: `netdrop record --trace --sockets` records a namespace while a UDP
// socket with a tiny receive buffer overflows; `diagnose --from`, run as an
// unprivileged user, finds the socket-rcvbuf loss with the count nstat
// gives; `report` writes the HTML page, which a real headless Chromium
// loads without a console error and screenshots.
func TestRecordDiagnoseReportChromium(t *testing.T) {
	p := testnet.NewPair(t, "rec")
	testnet.RequireTool(t, "nstat")
	bin := build(t)
	dir := shared(t)
	rec := filepath.Join(dir, "fault.ndrec")

	sock := testnet.ListenUDP(t, p.B, p.AddrB.String()+":9400")
	if err := sock.SetReadBuffer(1024); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "record", "-o", rec, "--netns", p.B, "-i", "250ms", "--trace", "--sockets")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitIntervals(t, rec, 3)
	before := testnet.Nstat(t, p.B, "UdpRcvbufErrors")
	testnet.SendUDP(t, p.A, p.AddrB.String()+":9400", 3000, 200)
	time.Sleep(300 * time.Millisecond)
	lost := testnet.Nstat(t, p.B, "UdpRcvbufErrors") - before
	waitIntervals(t, rec, countIntervals(t, rec)+3)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Fatalf("record after SIGTERM: exit %d (%v), want 143; stderr: %s", code, err, stderr.String())
	}
	if lost < 100 {
		t.Fatalf("nstat counts %d receive-buffer drops: the fault did not happen", lost)
	}

	// Offline, as nobody: no root, and nothing read from the kernel.
	diag := exec.Command(bin, "diagnose", "--from", rec, "--json")
	diag.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, errOut, code := run(t, diag)
	if code != 1 {
		t.Fatalf("diagnose --from: exit %d, want 1 (a finding); stderr: %s", code, errOut)
	}
	r := decode(t, out)
	if r.Netns != p.B {
		t.Errorf("netns %q, want the recorded %q", r.Netns, p.B)
	}
	if !r.Traced {
		t.Errorf("the recording's tracer rows were not used (unavailable: %+v)", r.Unavailable)
	}
	var got uint64
	for _, f := range r.Findings {
		if f.Stage == string(stage.SocketRcvbuf) {
			got = max(got, f.Drops)
		}
	}
	if got != lost {
		t.Errorf("diagnose --from counts %d receive-buffer drops, nstat %d; findings %+v", got, lost, r.Findings)
	}
	if len(r.Findings) == 0 || r.Findings[0].Stage != string(stage.SocketRcvbuf) {
		t.Errorf("top finding %+v, want socket-rcvbuf", r.Findings)
	}

	html := filepath.Join(dir, "report.html")
	if _, errOut, code := run(t, exec.Command(bin, "report", rec, "-o", html)); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	// Self-contained: nothing to fetch.
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|url\(\s*['"]?(https?:|//)|@import`).Find(page); m != nil {
		t.Errorf("the page refers to something outside it: %q", m)
	}
	for _, want := range []string{`data-stage="socket-rcvbuf"`, "drop rate of socket-rcvbuf over time", p.B} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	shot := filepath.Join(dir, "report.png")
	dom := chromium(t, html, shot)
	if !strings.Contains(dom, `data-nd-ready="yes"`) {
		t.Errorf("the page's script did not run to its end")
	}
	if m := regexp.MustCompile(`<div id="nd-errors">([^<]+)</div>`).FindStringSubmatch(dom); m != nil {
		t.Errorf("the page reported script errors: %s", m[1])
	}
	checkScreenshot(t, shot)
	if d := os.Getenv("NETDROP_ARTIFACTS"); d != "" {
		// CI keeps the page and its screenshot.
		for _, f := range []string{html, shot, rec} {
			b, _ := os.ReadFile(f)
			_ = os.WriteFile(filepath.Join(d, filepath.Base(f)), b, 0o644)
		}
	}
}

// shared is a temporary directory every user can read, for files the
// unprivileged run opens.
func shared(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netdrop-record-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func countIntervals(t *testing.T, path string) int {
	t.Helper()
	r, err := recording.Open(path)
	if err != nil {
		return 0 // not there yet, or its header not written yet
	}
	defer r.Close()
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			return n
		}
		n++
	}
}

func waitIntervals(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for countIntervals(t, path) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d intervals after 20 s", path, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chromium loads the page in a real headless Chromium (Debian's chromium
// package), returns the DOM after its scripts ran and saves a screenshot.
// A console message of any kind fails the test: the page logs nothing, so
// anything logged is an error or a warning. Under CI=true a missing
// Chromium fails the test instead of skipping it.
func chromium(t *testing.T, html, shot string) string {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("needs chromium to check the report page (apt-get install chromium)")
	}
	common := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--enable-logging=stderr", "--v=0"}
	browse := func(extra ...string) (string, string) {
		args := append(append(append([]string{}, common...), "--user-data-dir="+t.TempDir()), extra...)
		args = append(args, "file://"+html)
		cmd := exec.Command(bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("%s did not finish in 60 s\n%s", bin, stderr.String())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, ":CONSOLE") {
				t.Errorf("console message from the page: %s", line)
			}
		}
		return stdout.String(), stderr.String()
	}
	dom, _ := browse("--dump-dom")
	browse("--window-size=1280,2000", "--screenshot="+shot)
	return dom
}

// checkScreenshot checks the screenshot is a real picture: a PNG of the
// window's size with the charts' colours in it, not a blank page.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 1000 || b.Dy() < 1000 {
		t.Errorf("screenshot %v, want 1280x2000", b)
	}
	// The critical (#c62839) or warning (#e08a1e) colour of the path box
	// and the chart.
	red := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			if near(img, x, y, 0xc6, 0x28, 0x39) || near(img, x, y, 0xe0, 0x8a, 0x1e) {
				red++
			}
		}
	}
	if red < 200 {
		t.Errorf("the screenshot shows %d sampled pixels of the severity colours: no chart or path drawn?", red)
	}
}

func near(img image.Image, x, y int, r, g, b uint8) bool {
	cr, cg, cb, _ := img.At(x, y).RGBA()
	d := func(c uint32, want uint8) bool { v := int(c>>8) - int(want); return v > -12 && v < 12 }
	return d(cr, r) && d(cg, g) && d(cb, b)
}

// TestLabKeepRecordReport takes a lab scenario's recording the way a user
// would after a failed run: `lab run --keep-record` leaves it, `diagnose
// --from` (unprivileged, after the namespaces are gone) names the stage
// the scenario breaks, and the report of it loads in Chromium without a
// console message.
func TestLabKeepRecordReport(t *testing.T) {
	testnet.RequireRoot(t)
	bin := build(t)
	dir := shared(t)
	const scenario = "netfilter-drop"
	out, errOut, code := run(t, exec.Command(bin, "lab", "run", scenario, "--keep-record="+dir, "--json"))
	if code != 0 {
		t.Fatalf("lab run: exit %d\n%s\n%s", code, out, errOut)
	}
	var results []struct {
		Expected string `json:"expected_stage"`
		Drops    uint64 `json:"drops"`
		Record   string `json:"record"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil || len(results) != 1 {
		t.Fatalf("lab run --json: %v\n%s", err, out)
	}
	res := results[0]
	if res.Record != filepath.Join(dir, scenario+".ndrec") {
		t.Fatalf("recording %q, want it in %s", res.Record, dir)
	}
	diag := exec.Command(bin, "diagnose", "--from", res.Record, "--json")
	diag.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, errOut, code = run(t, diag)
	if code != 1 {
		t.Fatalf("diagnose --from: exit %d, want 1; stderr: %s", code, errOut)
	}
	r := decode(t, out)
	if len(r.Findings) == 0 || r.Findings[0].Stage != res.Expected || r.Findings[0].Drops != res.Drops {
		t.Errorf("offline top finding %+v, the lab found %s with %d drops", r.Findings, res.Expected, res.Drops)
	}
	html := filepath.Join(dir, "lab.html")
	if _, errOut, code := run(t, exec.Command(bin, "report", res.Record, "-o", html)); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	shot := filepath.Join(dir, "lab.png")
	dom := chromium(t, html, shot)
	if !strings.Contains(dom, `data-nd-ready="yes"`) || !strings.Contains(dom, `data-stage="`+res.Expected+`"`) {
		t.Errorf("the page did not load whole, or lacks the %s stage", res.Expected)
	}
	if m := regexp.MustCompile(`<div id="nd-errors">([^<]+)</div>`).FindStringSubmatch(dom); m != nil {
		t.Errorf("the page reported script errors: %s", m[1])
	}
	checkScreenshot(t, shot)
}

// TestRecordLabFault records a lab fault with `netdrop record`: the lab's
// netfilter-drop scenario, kept after its run (--keep leaves the receiver's
// DROP rule in place), gets new traffic while record watches the
// receiver's namespace; diagnose --from counts what the rule's own nft
// counter counted, and the report of the recording loads in Chromium.
func TestRecordLabFault(t *testing.T) {
	testnet.RequireRoot(t)
	testnet.RequireTool(t, "nft")
	bin := build(t)
	dir := shared(t)
	const scenario = "netfilter-drop"
	rcv, snd := lab.Prefix+scenario+"-rcv", lab.Prefix+scenario+"-snd"
	if out, errOut, code := run(t, exec.Command(bin, "lab", "run", scenario, "--keep")); code != 0 {
		t.Fatalf("lab run --keep: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Cleanup(func() { exec.Command(bin, "lab", "clean").Run() })
	rec := filepath.Join(dir, "lab-fault.ndrec")
	cmd := exec.Command(bin, "record", "-o", rec, "--netns", rcv, "-i", "250ms", "--trace", "--sockets")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitIntervals(t, rec, 3)
	before := nftDropped(t, rcv)
	testnet.SendUDP(t, snd, "10.231.0.2:5001", 1500, 200)
	time.Sleep(300 * time.Millisecond)
	dropped := nftDropped(t, rcv) - before
	waitIntervals(t, rec, countIntervals(t, rec)+3)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if dropped < 100 {
		t.Fatalf("the rule's counter moved by %d: the fault did not happen", dropped)
	}
	diag := exec.Command(bin, "diagnose", "--from", rec, "--json")
	diag.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, errOut, code := run(t, diag)
	if code != 1 {
		t.Fatalf("diagnose --from: exit %d, want 1; stderr: %s", code, errOut)
	}
	r := decode(t, out)
	if len(r.Findings) == 0 || r.Findings[0].Stage != string(stage.Netfilter) || r.Findings[0].Drops != dropped {
		t.Errorf("findings %+v, want netfilter first with the rule's %d drops", r.Findings, dropped)
	}
	html := filepath.Join(dir, "lab-fault.html")
	if _, errOut, code := run(t, exec.Command(bin, "report", rec, "-o", html)); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errOut)
	}
	shot := filepath.Join(dir, "lab-fault.png")
	dom := chromium(t, html, shot)
	if !strings.Contains(dom, `data-nd-ready="yes"`) || !strings.Contains(dom, "drop rate of netfilter over time") {
		t.Errorf("the page did not load whole, or has no netfilter chart")
	}
	checkScreenshot(t, shot)
}

// nftDropped sums the packet counters of the DROP rules in ns, as nft
// lists them: the reference for the netfilter stage.
func nftDropped(t *testing.T, ns string) uint64 {
	t.Helper()
	out := testnet.In(t, ns, "nft", "list", "ruleset")
	var n uint64
	for _, m := range regexp.MustCompile(`counter packets (\d+) bytes \d+ drop`).FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}
