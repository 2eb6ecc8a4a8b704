//go:build linux

package shmring_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netdrop/netdrop/shmring"
)

// The producer and the consumer are normally two processes; both ends are
// in one here so the example runs.
func Example() {
	dir, _ := os.MkdirTemp("", "shmring-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ring") // normally under /dev/shm
	ctx := context.Background()

	// Producer process.
	p, err := shmring.CreateOrReplace(path, shmring.Options{Capacity: 1 << 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range []string{"one", "two", "three"} {
		if err := p.Send(ctx, []byte(m)); err != nil {
			fmt.Println(err)
		}
	}
	p.Close() // the consumer reads what is left, then gets io.EOF

	// Consumer process.
	c, err := shmring.Open(path, shmring.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	buf := make([]byte, c.MaxMessage())
	n, _ := c.Recv(ctx, buf) // a copy
	fmt.Println(string(buf[:n]))
	msg, _ := c.Peek(ctx) // in place, valid until Release
	fmt.Println(string(msg))
	c.Release()
	n, _ = c.Recv(ctx, buf)
	fmt.Println(string(buf[:n]))
	_, err = c.Recv(ctx, buf)
	fmt.Println(err)
	// Output:
	// one
	// two
	// three
	// EOF
}
