package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/netdrop/netdrop/stage"
)

// TestFromFollowsRotation: diagnose --from and counters --from FILE read a
// recording that record --max-size rotated as one, FILE.1 then FILE: the
// diagnosis runs from FILE.1's first reading to FILE's last, so it counts
// the UDP receive-buffer drops of both files, and counters shows FILE's
// last reading.
func TestFromFollowsRotation(t *testing.T) {
	base := counters.Collect(context.Background(), counters.Options{
		FS: counters.NewFS("../../counters/testdata/linux-6.18"), Sources: []counters.Source{counters.SNMPSource{}}})
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	interval := func(i int) recording.Interval {
		s := &counters.Snapshot{Time: start.Add(time.Duration(i) * time.Second), Netns: counters.CurrentNetns().String(), Sysctls: map[string]string{}}
		for _, c := range base.Counters {
			if c.Field == "Udp:RcvbufErrors" {
				c.Value = uint64(1000 + 100*i)
			}
			s.Add(c)
		}
		return recording.Interval{Time: s.Time, Counters: s}
	}
	dir := t.TempDir()
	create := func(path string, n int, maxSize int64) *recording.Writer {
		w, err := recording.Create(path, recording.Header{Host: "h", Kernel: "6.18.0", Interval: recording.Duration(time.Second), Started: start},
			recording.Options{MaxSize: maxSize})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := w.Write(interval(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return w
	}
	one := create(filepath.Join(dir, "one.ndrec"), 1, 0)
	path := filepath.Join(dir, "r.ndrec")
	const n = 30
	if w := create(path, n, 3*one.Size()); w.Rotations() == 0 {
		t.Fatal("the recording did not rotate")
	}
	// Where FILE.1 starts, read on its own.
	r, err := recording.Open(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	firstIv, err := r.Next()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	first := int(firstIv.Time.Sub(start) / time.Second)
	if first >= n-2 {
		t.Fatalf("FILE.1 starts at reading %d of %d: the test needs both files to hold several", first, n)
	}

	run := func(args ...string) []byte {
		t.Helper()
		var out, errb bytes.Buffer
		// diagnose exits 1 when it finds loss, as here.
		if code := Main(context.Background(), args, &out, &errb); code != ExitOK && code != ExitFindings {
			t.Fatalf("netdrop %v: exit %d: %s", args, code, errb.String())
		}
		return out.Bytes()
	}
	var rep struct {
		Findings []struct {
			Stage stage.ID `json:"stage"`
			Drops uint64   `json:"drops"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(run("diagnose", "--from", path, "--json"), &rep); err != nil {
		t.Fatal(err)
	}
	var drops uint64
	for _, f := range rep.Findings {
		if f.Stage == stage.SocketRcvbuf {
			drops += f.Drops
		}
	}
	if want := uint64(100 * (n - 1 - first)); drops != want {
		t.Errorf("diagnose --from: %d receive-buffer drops, want %d (readings %d to %d, across FILE.1 and FILE)", drops, want, first, n-1)
	}

	var snap counters.Snapshot
	if err := json.Unmarshal(run("counters", "--from", path, "--json"), &snap); err != nil {
		t.Fatal(err)
	}
	if v, ok := snap.Value(counters.ProcNetSNMP, "", "Udp:RcvbufErrors"); !ok || v != uint64(1000+100*(n-1)) {
		t.Errorf("counters --from: Udp:RcvbufErrors %d (found %v), want FILE's last reading, %d", v, ok, 1000+100*(n-1))
	}

	// FILE.1 of an earlier recording is not read: a fresh FILE alone.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w, err := recording.Create(path, recording.Header{Host: "h", Kernel: "6.18.0", Interval: recording.Duration(time.Second), Started: start.Add(time.Hour)}, recording.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := n; i < n+3; i++ {
		if err := w.Write(interval(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	rep.Findings = nil
	if err := json.Unmarshal(run("diagnose", "--from", path, "--json"), &rep); err != nil {
		t.Fatal(err)
	}
	drops = 0
	for _, f := range rep.Findings {
		if f.Stage == stage.SocketRcvbuf {
			drops += f.Drops
		}
	}
	if drops != 200 {
		t.Errorf("diagnose --from a new recording beside an old FILE.1: %d drops, want its own 200", drops)
	}
}
