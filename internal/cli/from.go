package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/spf13/cobra"
)

// fromFlags are the flags of the commands that read a recording instead
// of the kernel (diagnose --from, counters --from).
type fromFlags struct {
	path, since, until string
}

func (f *fromFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.path, "from", "", "read a recording made by netdrop record instead of the kernel (no root needed, any machine)")
	fl.StringVar(&f.since, "since", "", "with --from: start of the stretch to read: RFC 3339 time, HH:MM[:SS] (UTC, on the recording's first day) or +DURATION after its start")
	fl.StringVar(&f.until, "until", "", "with --from: end of the stretch, in the same forms as --since")
}

// check refuses flags that read the kernel together with --from, and
// --since/--until without it.
func (f *fromFlags) check(cmd *cobra.Command, live ...string) error {
	if f.path == "" {
		for _, n := range []string{"since", "until"} {
			if cmd.Flags().Changed(n) {
				return fmt.Errorf("--%s needs --from FILE", n)
			}
		}
		return nil
	}
	for _, n := range live {
		if cmd.Flags().Changed(n) {
			return fmt.Errorf("--%s reads the kernel; with --from the recording holds what was read", n)
		}
	}
	return nil
}

// span reads the stretch --since..--until of the recording, with the part
// record --max-size rotated out before FILE (FILE.1) when it is this
// recording's (recording.OpenAll). A file that ends in a partial record (a
// recorder killed while writing) is read up to its last whole interval,
// and warn says so.
func (f *fromFlags) span(warn io.Writer) (recording.Header, *recording.Span, error) {
	r, err := recording.OpenAll(f.path)
	if err != nil {
		return recording.Header{}, nil, err
	}
	defer r.Close()
	since, err := parseWhen(f.since, r.Header.Started)
	if err != nil {
		return r.Header, nil, fmt.Errorf("--since: %w", err)
	}
	until, err := parseWhen(f.until, r.Header.Started)
	if err != nil {
		return r.Header, nil, fmt.Errorf("--until: %w", err)
	}
	sp, err := recording.ReadSpan(r, since, until, nil)
	if t := r.Truncated(); t != nil {
		fmt.Fprintf(warn, "netdrop: %s: %v\n", f.path, t)
	}
	if err != nil {
		// sp is kept for a caller that needs one interval only.
		return r.Header, sp, fmt.Errorf("%s: %w", f.path, err)
	}
	return r.Header, sp, nil
}

// parseWhen reads a --since/--until value; "" is an open end.
func parseWhen(s string, start time.Time) (time.Time, error) {
	switch {
	case s == "":
		return time.Time{}, nil
	case strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, err
		}
		return start.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			y, m, d := start.UTC().Date()
			return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), 0, time.UTC), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2026-12-05T13:20:00Z), HH:MM[:SS] in UTC, or +DURATION after the recording's start", s)
}

// observed is the evidence of a recorded stretch, as diagnose reads it.
func observed(sp *recording.Span) diagnose.Observed {
	return diagnose.Observed{
		Before: sp.First.Counters, After: sp.Last.Counters,
		SocketsBefore: sp.First.Sockets, SocketsAfter: sp.Last.Sockets,
		Trace: sp.Trace,
	}
}

// diagnoseRecorded diagnoses a recorded stretch, stamped with where it was
// recorded.
func diagnoseRecorded(h recording.Header, sp *recording.Span, expect []diagnose.Expect) *diagnose.Report {
	r := observed(sp).Analyze(expect)
	r.Host, r.Kernel = h.Host, h.Kernel
	return r
}
