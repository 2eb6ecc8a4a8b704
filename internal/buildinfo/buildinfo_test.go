package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFromBuildInfo(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/netdrop/netdrop", Version: "v0.0.0-20261205084000-b42933f1a2c4+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "CGO_ENABLED", Value: "0"},
			{Key: "GOARCH", Value: "arm64"},
			{Key: "GOOS", Value: "linux"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "b42933f1a2c4d5e6f708192a3b4c5d6e7f801234"},
			{Key: "vcs.time", Value: "2026-12-05T08:40:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	host := runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ld   linkerVars
		want Info
		line string
	}{
		{
			name: "stamped by the go command",
			bi:   stamped,
			want: Info{Version: "v0.0.0-20261205084000-b42933f1a2c4+dirty", Revision: "b42933f1a2c4d5e6f708192a3b4c5d6e7f801234",
				Time: time.Date(2026, 12, 5, 8, 40, 0, 0, time.UTC), Modified: true, GoVersion: "go1.26.8", Platform: "linux/arm64"},
			line: "netdrop v0.0.0-20261205084000-b42933f1a2c4+dirty (b42933f1a2c4, 2026-12-05T08:40:00Z, modified) go1.26.8 linux/arm64",
		},
		{
			name: "linker overrides win (image build without .git)",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "1"}}},
			ld:   linkerVars{version: "v1.2.3", revision: "0123456789abcdef", time: "2026-12-05T09:00:00+01:00", modified: "true"},
			want: Info{Version: "v1.2.3", Revision: "0123456789abcdef", Time: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC), Modified: true,
				GoVersion: "go1.26.8", Platform: host, CGO: true},
			line: "netdrop v1.2.3 (0123456789ab, 2026-12-05T08:00:00Z, modified) go1.26.8 " + host,
		},
		{
			name: "no build information at all",
			want: Info{Version: "(devel)", GoVersion: runtime.Version(), Platform: host},
			line: "netdrop (devel) " + runtime.Version() + " " + host,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fromBuildInfo(tc.bi, tc.ld)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Info (-want +got):\n%s", diff)
			}
			if got.String() != tc.line {
				t.Errorf("String() = %q, want %q", got.String(), tc.line)
			}
		})
	}
}

// TestRead checks the running test binary gives at least the toolchain.
func TestRead(t *testing.T) {
	in := Read()
	if in.GoVersion == "" || in.Version == "" || in.Platform == "" {
		t.Errorf("Read() = %+v: version, Go version and platform must never be empty", in)
	}
}
