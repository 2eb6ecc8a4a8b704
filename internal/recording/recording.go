// Package recording writes and reads netdrop recordings: every interval's
// counter snapshot, the drop tracer's rows and the socket view, appended to
// one compressed file that `netdrop diagnose --from`, `counters --from` and
// `report` read later, on any machine, without root or kernel access.
//
// The format is described for people in docs/recording.md. In short: the
// file is a sequence of independent zstd frames (RFC 8878), each holding one
// record as one line of JSON. Independent frames make the file crash-safe —
// a process killed in the middle of a write leaves at most one partial frame
// at the end, and every whole frame before it still decodes — and keep it
// readable by standard tools (`zstdcat FILE | jq`). JSON keeps the records
// self-describing and versioned by a field rather than by a schema compiler.
// Counters are written as changes against the previous interval, through a
// table of counter keys that grows as new counters appear, so an interval
// where little moved costs a few hundred bytes.
//
// This package knows nothing of findings: it stores evidence and gives it
// back as counters.Snapshot, sockets.Summary and droptrace.Snapshot values.
package recording

import (
	"errors"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/sockets"
)

// Format is the value of the header's "format" field: what this file is.
const Format = "netdrop-recording"

// Version is the format's version. It goes up by one when a change could
// make an older reader misread a file (a field renamed, removed or given
// another meaning); fields added keep it, and readers ignore fields they do
// not know.
const Version = 1

// ErrFormat wraps every error about a file that is not a recording, or not
// one of a version this reader knows.
var ErrFormat = errors.New("not a netdrop recording")

// Header describes a recording: the first record of every file.
type Header struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Netdrop is the build that wrote the file (netdrop version).
	Netdrop string `json:"netdrop,omitempty"`
	// Host and Kernel are where the recording was made: the host name and
	// the kernel release (uname -r). Diagnoses of the file report them.
	Host   string `json:"host"`
	Kernel string `json:"kernel"`
	// Netns is the namespace recorded, as the user named it ("" for the
	// recorder's own).
	Netns string `json:"netns,omitempty"`
	// Started is when the recording (not this file: see Part) began.
	Started  time.Time `json:"started"`
	Interval Duration  `json:"interval"`
	// Trace and Sockets say whether the tracer rows and the socket views
	// were asked for; an interval may still lack them when they could not
	// be read (its counters' unavailable list says why).
	Trace   bool `json:"trace"`
	Sockets bool `json:"sockets"`
	// Part counts the files of one recording: 0 for the first, one more
	// after every rotation (see Options.MaxSize).
	Part int `json:"part"`
}

// Interval is one moment of a recording: everything read at Time.
type Interval struct {
	Time time.Time
	// Counters is the full snapshot of every counter read at Time.
	Counters *counters.Snapshot
	// Sockets is the latest sock_diag view, read at SocketsAt; nil when
	// not recorded. A view is read at most as often as it costs under 1%
	// of a core (see Collect), so on a host with many sockets an interval
	// may carry the view of an earlier one.
	Sockets   *sockets.Summary
	SocketsAt time.Time
	// Trace is what the drop tracer counted since the previous interval
	// (droptrace.Delta of its two snapshots); nil when the tracer did not
	// run for that stretch, and always nil for a file's first interval.
	Trace *droptrace.Snapshot
}

// Duration is a time.Duration that reads and writes as Go's duration text
// ("1s", "250ms"), so a person reading the JSON knows the unit.
type Duration time.Duration

// MarshalText writes d as "1s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "1s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
