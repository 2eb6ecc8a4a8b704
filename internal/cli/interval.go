package cli

import (
	"fmt"
	"time"
)

// minInterval is the shortest sampling interval the commands accept.
// A snapshot itself takes a millisecond or more, many NIC drivers refresh
// their hardware statistics only every second or so, and the tracer's
// table is read from a map the kernel keeps updating: two readings closer
// than this measure netdrop and the drivers' refresh, not the host, and a
// rate computed over them is noise.
const minInterval = 100 * time.Millisecond

// checkInterval refuses an interval flag below minInterval. zeroOK is for
// flags where 0 means "off" (trace prints only its summary then).
func checkInterval(flag string, d time.Duration, zeroOK bool) error {
	switch {
	case d == 0 && zeroOK:
		return nil
	case d < 0:
		return fmt.Errorf("%s %s: must not be negative", flag, d)
	case d < minInterval:
		return fmt.Errorf("%s %s: below the minimum of %s; two readings that close measure the time a snapshot takes and the drivers' refresh of their statistics (often once a second), not the host", flag, d, minInterval)
	}
	return nil
}
