package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/netdrop/netdrop/internal/buildinfo"
	"github.com/netdrop/netdrop/internal/recording"
	"github.com/spf13/cobra"
)

func init() { register(newRecordCmd) }

func newRecordCmd(e *env) *cobra.Command {
	var (
		out     string
		o       recording.CollectOptions
		maxSize byteSize = 64 << 20
	)
	cmd := &cobra.Command{
		Use:   "record -o FILE",
		Short: "Record every interval's counters (and drop tracer rows, socket views) to a compressed file",
		Long: `record reads what diagnose reads — every drop counter with the settings the
fixes are computed from, and with --trace and --sockets the drop tracer's rows
and the socket view — every --interval, and appends it to FILE until --duration
has passed or it is stopped (Ctrl-C, SIGTERM).

FILE is a sequence of zstd frames, one JSON record each (docs/recording.md):
a process killed at any moment leaves a file readable up to the last whole
interval, and zstdcat FILE | jq shows it. When FILE reaches half of --max-size
it becomes FILE.1 and a new FILE starts, so the two stay under --max-size;
--from FILE and report FILE read FILE.1, then FILE.

Read it back, on any machine and without root:
  netdrop diagnose --from FILE [--since T] [--until T]
  netdrop counters --from FILE
  netdrop report FILE -o report.html`,
		Example: `  netdrop record -o drops.ndrec -d 1h                 # an hour at one reading a second
  netdrop record -o drops.ndrec --trace --sockets      # with function-level and socket evidence
  netdrop record -o web.ndrec --netns web -i 5s --max-size 16MiB`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("-o FILE is required")
			}
			if err := checkInterval("--interval", o.Interval, false); err != nil {
				return err
			}
			if o.Duration < 0 {
				return fmt.Errorf("--duration %s: must not be negative", o.Duration)
			}
			if maxSize != 0 && maxSize < 64<<10 {
				return fmt.Errorf("--max-size %s: below the minimum of 64KiB (a file must hold its header and a full snapshot)", maxSize)
			}
			w, err := recording.Create(out, recording.NewHeader(o, buildinfo.Read().String()), recording.Options{MaxSize: int64(maxSize)})
			if err != nil {
				return err
			}
			if p := e.progress(); p != nil {
				o.Progress = func(pr recording.Progress) {
					rot := ""
					if pr.Rotations > 0 {
						rot = fmt.Sprintf(", rotated %d×", pr.Rotations)
					}
					fmt.Fprintf(p, "\r\x1b[Krecording to %s: %d intervals, %s%s, last %s", out, pr.Intervals, byteSize(pr.Bytes), rot, pr.Last.Local().Format("15:04:05"))
				}
			}
			cerr := recording.Collect(cmd.Context(), w, o)
			if o.Progress != nil {
				fmt.Fprintln(e.progress())
			}
			if err := w.Close(); cerr == nil {
				cerr = err
			}
			return cerr
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "the recording file to write (replaced if it exists)")
	f.DurationVarP(&o.Interval, "interval", "i", time.Second, "time between readings")
	f.DurationVarP(&o.Duration, "duration", "d", 0, "stop after this long (default: until interrupted)")
	f.VarP(&o.Netns, "netns", "n", "network namespace to record: NAME (/run/netns), PATH, or pid:N")
	f.BoolVar(&o.Trace, "trace", false, "run the eBPF drop tracer (skb:kfree_skb) and record its rows each interval (needs root)")
	f.BoolVar(&o.Sockets, "sockets", false, "record the socket view (sock_diag) each interval: which sockets, listeners and destinations")
	f.Var(&maxSize, "max-size", "bound on disk (e.g. 64MiB, 0 for none): at half of it FILE becomes FILE.1 and a new FILE starts")
	return cmd
}

// byteSize is a size flag: a number of bytes with an optional binary unit
// (KiB, MiB, GiB; K, M, G mean the same).
type byteSize int64

func (b byteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", int64(b))
}

func (b *byteSize) Set(s string) error {
	num := strings.TrimRightFunc(s, unicode.IsLetter)
	unit := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "iB"), "B"))
	mult := map[string]int64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if mult == 0 || err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("%q: want a size such as 64MiB, 512KiB or 0", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) Type() string { return "size" }
