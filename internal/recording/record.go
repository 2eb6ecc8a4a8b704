package recording

import (
	"encoding/json"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/stage"
)

// The record types: the value of a record's "t" field.
const (
	typeHeader   = "header"
	typeInterval = "interval"
)

// record is one line of JSON, the content of one zstd frame. Fields of an
// interval that are absent are unchanged since the file's previous
// interval; a file's first interval carries all of them.
type record struct {
	Type   string  `json:"t"`
	Header *Header `json:"header,omitempty"`

	Time  time.Time `json:"time,omitzero"`
	Netns *string   `json:"netns,omitempty"`
	CPUs  *int      `json:"cpus,omitempty"`
	// Keys are counter keys new in this interval; they take the next
	// numbers of the file's key table, in order, from 0.
	Keys []key `json:"keys,omitempty"`
	// Order is the snapshot's counters as key numbers, in the order they
	// were read, when it differs from the previous interval's: runs of
	// consecutive numbers as [first, length] pairs.
	Order [][2]int `json:"order,omitempty"`
	// Set holds [key number, value] for every counter whose value differs
	// from the previous interval's (all of them in a file's first interval).
	Set [][2]uint64 `json:"set,omitempty"`

	Unavailable json.RawMessage `json:"unavailable,omitempty"`
	Sysctls     json.RawMessage `json:"sysctls,omitempty"`
	NICs        json.RawMessage `json:"nics,omitempty"`
	Hooks       json.RawMessage `json:"hooks,omitempty"`
	BridgePorts json.RawMessage `json:"bridge_ports,omitempty"`
	// Sockets is the socket view (sockets.Summary) when it changed, and
	// SocketsAt when it was read, when that changed.
	Sockets   json.RawMessage `json:"sockets,omitempty"`
	SocketsAt *time.Time      `json:"sockets_at,omitempty"`
	// Trace is the tracer's delta since the previous interval; absent
	// when the tracer did not run for it.
	Trace *droptrace.Snapshot `json:"trace,omitempty"`
}

// key is a counter's identity and attributes, as counters.Counter has
// them, without the value.
type key struct {
	Source counters.SourceID `json:"s"`
	Object string            `json:"o,omitempty"`
	Field  string            `json:"f"`
	Stage  stage.ID          `json:"g,omitempty"`
	Gauge  bool              `json:"gauge,omitempty"`
	Host   bool              `json:"host,omitempty"`
	// Bits is the width of a counter that wraps (counters.Counter.Bits),
	// which its own JSON leaves out; 0 means 64.
	Bits uint8 `json:"bits,omitempty"`
}

func keyOf(c counters.Counter) key {
	return key{Source: c.Source, Object: c.Object, Field: c.Field, Stage: c.Stage, Gauge: c.Gauge, Host: c.HostWide, Bits: c.Bits}
}

func (k key) counter(v uint64) counters.Counter {
	return counters.Counter{Source: k.Source, Object: k.Object, Field: k.Field, Stage: k.Stage, Gauge: k.Gauge, HostWide: k.Host, Bits: k.Bits, Value: v}
}

// runs compresses a list of key numbers into [first, length] pairs of
// consecutive numbers.
func runs(order []int) [][2]int {
	out := [][2]int{}
	for _, k := range order {
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] == k {
			out[n-1][1]++
			continue
		}
		out = append(out, [2]int{k, 1})
	}
	return out
}
