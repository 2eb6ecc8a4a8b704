// Package buildinfo says which netdrop this is: the module version, the VCS
// revision and time it was built from, whether the tree had uncommitted
// changes, and the Go toolchain. `netdrop version` prints it and the exporter
// publishes it as netdrop_build_info, so a report or a scrape can be traced
// back to the source that produced it.
//
// The data comes from the build information the Go toolchain embeds in every
// binary (runtime/debug.ReadBuildInfo). A build without the VCS at hand (a
// container build that does not copy .git) can set the version and revision
// with the linker, as the Makefile does: -ldflags "-X
// github.com/netdrop/netdrop/internal/buildinfo.version=v1.2.3" and likewise
// revision, revisionTime (RFC 3339) and modified ("true"). The go command
// stamps only a checkout whose .git is a directory (not a git worktree) and
// only when -buildvcs is not false.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Set by the linker (-X) when the build has no VCS information of its own.
var (
	version      string
	revision     string
	revisionTime string
	modified     string
)

// Info describes one build of netdrop.
type Info struct {
	// Version is the module version: a tag such as v0.3.0, a pseudo-version
	// derived from the VCS by the go command, or "(devel)" when neither is
	// known.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, "" if unknown.
	Revision string `json:"revision,omitempty"`
	// Time is the commit time of Revision; zero if unknown.
	Time time.Time `json:"time,omitzero"`
	// Modified reports uncommitted changes in the tree at build time.
	Modified bool `json:"modified"`
	// GoVersion is the toolchain that built the binary, e.g. go1.26.8.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH of the binary.
	Platform string `json:"platform"`
	// CGO reports a build with cgo enabled (release builds are static:
	// CGO_ENABLED=0).
	CGO bool `json:"cgo"`
}

// Read returns the build information of the running binary.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return fromBuildInfo(bi, linkerVars{version, revision, revisionTime, modified})
}

// linkerVars are the values set with -ldflags -X; "" means unset.
type linkerVars struct{ version, revision, time, modified string }

// fromBuildInfo turns the embedded build information (nil when the binary
// has none) and the linker overrides into an Info.
func fromBuildInfo(bi *debug.BuildInfo, ld linkerVars) Info {
	in := Info{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.Main.Version != "" {
			in.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		var goos, goarch string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					in.Time = t.UTC()
				}
			case "vcs.modified":
				in.Modified, _ = strconv.ParseBool(s.Value)
			case "CGO_ENABLED":
				in.CGO = s.Value == "1"
			case "GOOS":
				goos = s.Value
			case "GOARCH":
				goarch = s.Value
			}
		}
		if goos != "" && goarch != "" {
			in.Platform = goos + "/" + goarch
		}
	}
	if ld.version != "" {
		in.Version = ld.version
	}
	if ld.revision != "" {
		in.Revision = ld.revision
	}
	if t, err := time.Parse(time.RFC3339, ld.time); err == nil {
		in.Time = t.UTC()
	}
	if m, err := strconv.ParseBool(ld.modified); err == nil {
		in.Modified = m
	}
	return in
}

// ShortRevision is the first 12 characters of the revision, as git prints
// it in short form; "" if unknown.
func (in Info) ShortRevision() string {
	if len(in.Revision) > 12 {
		return in.Revision[:12]
	}
	return in.Revision
}

// String is the one line `netdrop --version` prints, e.g.
// "netdrop v0.3.0 (b42933f1a2c4, 2026-12-05T08:40:00Z, modified) go1.26.8 linux/amd64".
func (in Info) String() string {
	s := "netdrop " + in.Version
	var extra []string
	if in.Revision != "" {
		extra = append(extra, in.ShortRevision())
	}
	if !in.Time.IsZero() {
		extra = append(extra, in.Time.Format(time.RFC3339))
	}
	if in.Modified {
		extra = append(extra, "modified")
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s + " " + in.GoVersion + " " + in.Platform
}
