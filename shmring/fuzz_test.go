//go:build linux

package shmring

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzSizes drives one ring with a sequence of operations decoded from the
// input: each pair of bytes is either a send of a size (up to beyond the
// maximum) or a receive (a copy, or in place with TryPeek and Release). A slice of the messages accepted is the model: the
// ring must return exactly those, in order, refuse only oversize messages
// or sends into a non-empty ring, and never report empty while holding
// messages.
func FuzzSizes(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x80, 0x00, 0x07, 0xff, 0x80, 0x00})
	f.Add(bytes.Repeat([]byte{0x03, 0xfc}, 40))
	f.Add([]byte{0x07, 0xfc, 0x07, 0xfc, 0x80, 0, 0x07, 0xfc, 0x80, 0, 0x80, 0})
	p, c := pair(f, 4096)
	max := p.MaxMessage()
	buf := make([]byte, max)
	f.Fuzz(func(t *testing.T, ops []byte) {
		var model [][]byte
		seq := uint64(0)
		recv := func(peek bool) {
			t.Helper()
			var n int
			var err error
			if !peek {
				n, err = c.TryRecv(buf)
			} else {
				var msg []byte
				msg, err = c.TryPeek()
				n = copy(buf, msg)
				if again, _ := c.TryPeek(); err == nil && len(again) != len(msg) {
					t.Fatalf("second TryPeek returned %d bytes, first %d", len(again), len(msg))
				}
				c.Release()
			}
			if len(model) == 0 {
				if err != ErrEmpty {
					t.Fatalf("empty model: TryRecv = %d, %v", n, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("TryRecv with %d queued: %v", len(model), err)
			}
			if !bytes.Equal(buf[:n], model[0]) {
				t.Fatalf("got %d bytes, want %d (%x…)", n, len(model[0]), model[0][:min(8, len(model[0]))])
			}
			model = model[1:]
		}
		for i := 0; i+1 < len(ops); i += 2 {
			v := int(ops[i])<<8 | int(ops[i+1])
			if v&0x8000 != 0 {
				recv(v&0x4000 != 0)
				continue
			}
			size := v & 0x0fff // 0..4095, past the 2044 maximum
			msg := pattern(seq, size)
			seq++
			err := p.TrySend(msg)
			switch {
			case size > max:
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("send %d > max %d: %v", size, max, err)
				}
			case errors.Is(err, ErrFull):
				if len(model) == 0 {
					t.Fatalf("ErrFull for %d bytes with the ring empty", size)
				}
			case err != nil:
				t.Fatalf("send %d: %v", size, err)
			default:
				model = append(model, msg)
			}
		}
		for len(model) > 0 {
			recv(len(model)%2 == 0)
		}
		recv(false) // must be empty now
		recv(true)
	})
}
