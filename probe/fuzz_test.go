package probe

import (
	"encoding/binary"
	"testing"

	"github.com/netdrop/netdrop/frame"
)

// FuzzParseCmsgs: control data comes from the kernel, but a parser must
// survive any bytes.
func FuzzParseCmsgs(f *testing.F) {
	f.Add([]byte{20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 40, 0, 0, 0, 7, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseCmsgs(b)
	})
}

// FuzzAccount feeds arbitrary datagrams, and sequence numbers of valid
// frames, to the receiver's accounting: it must not panic and every datagram
// must land in exactly one class.
func FuzzAccount(f *testing.F) {
	good := frame.Append(nil, &frame.Header{Type: frame.Data, Sender: 1, Seq: 3}, make([]byte, 8))
	f.Add(good, uint64(0), uint64(5))
	f.Add([]byte("NDPF"), uint64(1<<63), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, seqA, seqB uint64) {
		a := NewAccount(64, ClockMonotonic)
		a.Lock(1)
		for _, seq := range []uint64{seqA, seqB, seqA, seqB + 1} {
			d := append([]byte(nil), good...)
			binary.BigEndian.PutUint64(d[16:], seq)
			frame.Seal(d)
			a.Datagram(d, 0, 0)
		}
		a.Datagram(b, 1, 1)
		c := a.Tracker.Counts
		sum := c.Received + c.Duplicates + c.Late + c.OutOfWindow + a.Corrupted + a.Invalid + a.Foreign + a.Control
		if sum != a.Datagrams {
			t.Fatalf("classes sum to %d, datagrams %d", sum, a.Datagrams)
		}
		if c.Received+c.Lost+a.Tracker.Pending() != a.Tracker.Next() {
			t.Fatalf("received %d + lost %d + pending %d != next %d", c.Received, c.Lost, a.Tracker.Pending(), a.Tracker.Next())
		}
	})
}

// TestAccountNoAllocs: the receive path allocates nothing per frame.
func TestAccountNoAllocs(t *testing.T) {
	a := NewAccount(DefaultWindow, ClockMonotonic)
	d := frame.Append(nil, &frame.Header{Type: frame.Data, Sender: 1}, make([]byte, 20))
	bad := append([]byte(nil), d...)
	bad[30] ^= 1
	var seq uint64
	allocs := testing.AllocsPerRun(10000, func() {
		binary.BigEndian.PutUint64(d[16:], seq)
		frame.Seal(d)
		seq++
		a.Datagram(d, 1, 1)
		a.Datagram(bad, 1, 1)
		parseCmsgs(d)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame", allocs)
	}
	if a.Tracker.Counts.Received != seq || a.Corrupted != seq {
		t.Errorf("received %d corrupted %d of %d", a.Tracker.Counts.Received, a.Corrupted, seq)
	}
}
