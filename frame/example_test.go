package frame_test

import (
	"bytes"
	"fmt"
	"io"

	"github.com/netdrop/netdrop/frame"
)

// A sender encodes a frame once and stamps it before each send.
func ExampleStamp() {
	buf := make([]byte, frame.HeaderLen+20)
	h := frame.Header{Type: frame.Data, Sender: 42}
	if _, err := frame.Encode(buf, &h, make([]byte, 20)); err != nil {
		panic(err)
	}
	for seq := uint64(0); seq < 3; seq++ {
		frame.Stamp(buf, seq, 1700000000000000000, 12345)
		got, _, err := frame.Decode(buf)
		fmt.Println(got.Seq, got.Length, err)
	}
	// Output:
	// 0 20 <nil>
	// 1 20 <nil>
	// 2 20 <nil>
}

// A stream reader steps over damage and keeps going.
func ExampleScanner() {
	var stream []byte
	stream = frame.Append(stream, &frame.Header{Type: frame.Data, Seq: 1}, []byte("one"))
	stream = append(stream, "noise"...)
	stream = frame.Append(stream, &frame.Header{Type: frame.Data, Seq: 2}, []byte("two"))
	s := frame.NewScanner(bytes.NewReader(stream), 0)
	for {
		h, p, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("skipped:", err)
			continue
		}
		fmt.Println(h.Seq, string(p))
	}
	// Output:
	// 1 one
	// skipped: frame: bad magic
	// 2 two
}
