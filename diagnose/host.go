package diagnose

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// SchemaVersion is the version of a Report's JSON shape, described by
// docs/diagnose.schema.json. It goes up by one when a change could break a
// reader (a field renamed, removed or given another meaning); fields added
// keep it.
const SchemaVersion = 1

// stamp says where and when the diagnosis was made, so a saved report can
// be told from another: the host name (of netdrop's UTS namespace; network
// namespaces share it), the kernel release as uname -r gives it, and when
// the first snapshot was read.
func (r *Report) stamp(started time.Time) {
	r.SchemaVersion = SchemaVersion
	r.Host, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	r.StartedAt = started.UTC()
}
