package counters

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConntrackKeptFiles reads the conntrack gauges twice through one
// KeptFiles, the files' values changed in between (in place, as a sysctl's
// value changes under its open file): each reading is what a reading
// without kept files gives, and only files that parsed stay open.
func TestConntrackKeptFiles(t *testing.T) {
	tests := []struct {
		name       string
		count, max string // "" leaves the file out
		count2     string // count's value at the second reading
		kept       [2]int // files open after each reading
	}{
		{"both", "12\n", "262144\n", "13\n", [2]int{2, 2}},
		{"count unparsable", "twelve\n", "262144\n", "twelve\n", [2]int{1, 1}},
		{"count becomes unparsable", "12\n", "262144\n", "x\n", [2]int{2, 1}},
		{"not loaded", "", "", "", [2]int{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "proc", "sys", "net", "netfilter")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(root, "proc", "net", "stat"), 0o755); err != nil {
				t.Fatal(err)
			}
			write := func(name, v string) {
				if v == "" {
					return
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("nf_conntrack_count", tt.count)
			write("nf_conntrack_max", tt.max)
			var k KeptFiles
			defer k.Close()
			for i := range 2 {
				if i == 1 {
					write("nf_conntrack_count", tt.count2)
				}
				r := NewReading(NewFS(root))
				r.Kept = &k
				got, want := &Snapshot{}, &Snapshot{}
				if err := (ConntrackSource{}).Collect(t.Context(), r, got); err != nil {
					t.Fatal(err)
				}
				if err := (ConntrackSource{}).Collect(t.Context(), NewReading(NewFS(root)), want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("reading %d with kept files:\n%+v\nwithout:\n%+v", i, got, want)
				}
				if k.Len() != tt.kept[i] {
					t.Errorf("reading %d: %d files kept, want %d", i, k.Len(), tt.kept[i])
				}
			}
			if err := k.Close(); err != nil || k.Len() != 0 {
				t.Errorf("Close: %v, %d files still kept", err, k.Len())
			}
		})
	}
}

// TestKeptSockets dumps links and qdiscs in three readings through one
// KeptFiles: clean dumps share one socket, which Close closes; a dump that
// fails discards its socket, and the next reading dials again.
func TestKeptSockets(t *testing.T) {
	tests := []struct {
		name       string
		kernel     func(t *testing.T) *fakeKernel
		dials      int // sockets dialled over the three readings
		closes     int // sockets closed before Close
		kept       int // sockets kept at the end
		wantErrors bool
	}{
		{"clean dumps", func(t *testing.T) *fakeKernel {
			return routeKernel(t, []testLink{{index: 1, name: "lo", stats64: make([]uint64, 25)}}, []testQdisc{{kind: "noqueue", ifindex: 1}})
		}, 1, 0, 1, false},
		{"failing dumps", func(t *testing.T) *fakeKernel { return errnoKernel(t, unix.EPERM) }, 6, 6, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fk := tt.kernel(t)
			var k KeptFiles
			for i := range 3 {
				r := newReading(NewFS(t.TempDir()), fk.dial)
				r.Kept = &k
				links, lerr := r.linkDump()
				qdiscs, qerr := r.qdiscDump()
				if (lerr != nil || qerr != nil) != tt.wantErrors {
					t.Fatalf("reading %d: errors %v, %v", i, lerr, qerr)
				}
				// The same dumps without kept sockets.
				fresh := newReading(NewFS(t.TempDir()), tt.kernel(t).dial)
				wantLinks, _ := fresh.linkDump()
				wantQdiscs, _ := fresh.qdiscDump()
				if !reflect.DeepEqual(links, wantLinks) || !reflect.DeepEqual(qdiscs, wantQdiscs) {
					t.Errorf("reading %d: %v %v with a kept socket, %v %v without", i, links, qdiscs, wantLinks, wantQdiscs)
				}
			}
			if len(fk.dials) != tt.dials || fk.closes != tt.closes || k.Len() != tt.kept {
				t.Errorf("%d dialled, %d closed, %d kept; want %d, %d, %d", len(fk.dials), fk.closes, k.Len(), tt.dials, tt.closes, tt.kept)
			}
			if err := k.Close(); err != nil || k.Len() != 0 || fk.closes != tt.dials {
				t.Errorf("Close: %v; %d kept, %d of %d sockets closed", err, k.Len(), fk.closes, tt.dials)
			}
		})
	}
}
