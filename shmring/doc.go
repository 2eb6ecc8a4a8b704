// Package shmring is a lock-free single-producer single-consumer ring of
// variable-size messages in shared memory, for two processes on one Linux
// host. The segment is a file (normally under /dev/shm) or a memfd handed to
// the peer; the producer creates it, the consumer maps it.
//
// It is for the case where both ends are on the same host and the cost of a
// socket round trip (tens of microseconds on loopback) matters. It is not a
// multi-producer queue, not a persistence layer, and not a network
// transport: exactly one producer and one consumer may use a segment at a
// time, and nothing survives a reboot.
//
// # Use
//
// The producer calls CreateOrReplace (or CreateMemfd and hands File() to
// the peer) and Send or TrySend; the consumer calls Open (or OpenFile) and
// Recv, TryRecv, or Peek and Release to read a message in place without a
// copy. Errors are sentinels for errors.Is: ErrFull (TrySend on a full
// ring), ErrTooLarge (over MaxMessage, half the capacity), ErrVersion and
// ErrNotSegment (a file of another layout), ErrProducerDead, and io.EOF
// after the producer's Close.
//
// # Segment layout
//
//	offset  size  written by  contents
//	0       128   producer    magic, version, header size, capacity,
//	                          generation, producer pid, creation time
//	128     128   producer    heartbeat (CLOCK_MONOTONIC ns), closed flag
//	256     128   producer    tail (bytes ever written), producer-waiting
//	                          flag, data futex word
//	384     128   consumer    head (bytes ever read), consumer-waiting
//	                          flag, space futex word
//	512     cap   both        data: records of [len uint32][payload],
//	                          padded to 8 bytes
//
// Each index lives alone on its own 128-byte block, written by one side
// only, so the producer's stores to tail never invalidate the line holding
// head and vice versa (false sharing). 128 rather than 64 bytes because the
// adjacent-line prefetcher of Intel cores pulls lines in pairs. Each side
// also keeps a private copy of the other side's index (cachedHead in the
// producer, cachedTail in the consumer) and reads the shared one only when
// the cached value says the ring is full or empty, so in steady state a
// message costs at most one shared store per side and no cache-line
// ping-pong on reads. The consumer publishes head lazily: after every
// message while it keeps up (so the producer sees space at once), but only
// once per quarter ring while it works through a backlog, which is when
// saving the store matters.
//
// A record never straddles the end of the data area: when it would, the
// producer writes a padding marker and starts the record at offset 0. That
// keeps every payload contiguous, and it is why the largest message is half
// the capacity (minus the 4-byte length): a record of at most cap/2 bytes
// plus the padding before it always fits in an empty ring.
//
// # Memory ordering
//
// The producer writes the record bytes with ordinary stores, then publishes
// it with one atomic store of tail. The consumer loads tail atomically, then
// reads the record with ordinary loads, then publishes that the space is
// free with one atomic store of head. Correctness needs two things:
// (1) record bytes written before the tail store are visible to a consumer
// that has loaded the new tail (release/acquire), and (2) the consumer's
// reads of a record complete before its head store lets the producer
// overwrite the bytes.
//
// Go's sync/atomic operations are sequentially consistent (go.dev/ref/mem),
// which is stronger than the acquire/release pair needed here. On amd64 the
// Go compiler emits an atomic store as XCHG, a locked instruction that
// drains the store buffer (about 20 cycles), where a C++ release store would
// be a plain MOV; an atomic load is a plain MOV. So each message pays one
// XCHG on the producer side and at most one on the consumer side; caching
// the remote index keeps it there, and BenchmarkStream shows what it costs
// (tens of ns per 64-byte message between processes). On arm64 an atomic store is
// STLR and a load is LDAR, which are exactly release and acquire (and, being
// RCsc, never reordered with each other).
//
// The Go memory model speaks about goroutines of one program; it says
// nothing about another process mapping the same pages. What holds across
// processes is the hardware's ordering for the instructions above, since
// MAP_SHARED pages are the same physical memory and cache coherence does not
// care which process a core is running. On amd64 (TSO) stores become visible
// in program order and loads are not reordered with older loads, so the
// plain record stores are visible before the XCHG of tail, and the consumer's
// plain loads after its MOV of tail see them; the consumer's record loads
// cannot pass its later XCHG of head. On arm64 STLR orders every earlier load
// and store before it, and LDAR orders every later load and store after it,
// which gives (1) and (2) directly. The compiler cannot move the plain
// accesses across the atomic calls either: they are compiler barriers.
//
// The sleep/wake handshake is a Dekker pattern and needs store→load
// ordering, which acquire/release alone does not give: the consumer stores
// its waiting flag and then loads tail; the producer stores tail and then
// loads the waiting flag. XCHG on amd64 is a full barrier, and on arm64 an
// LDAR may not be satisfied before an earlier STLR in program order is
// visible, so at least one side sees the other's store and no wake-up is
// lost.
//
// # Waiting
//
// A blocking Send or Recv spins on the shared index for Options.Spin, then
// sleeps on a futex word in the segment with FUTEX_WAIT without the
// FUTEX_PRIVATE_FLAG (the private variant keys the wait queue on the
// process's address space, and a waiter in another process would never be
// woken). The other side only makes the FUTEX_WAKE system call when the
// waiting flag is set, so a ring whose peer is spinning costs no system
// calls at all. A sleeping goroutine parks its OS thread in the kernel; the
// Go runtime hands the thread's P to another thread, so the rest of the
// program keeps running. BenchmarkWakeup measures the cost of a sleep and
// wake round trip.
//
// # Crashes and restarts
//
// CreateOrReplace builds a new segment in a temporary file beside the path,
// fills in the header (magic last) and renames it over the path, so a
// consumer opening the path sees either the old segment or a complete new
// one, never a half-initialised header. A restarted producer therefore never
// writes into the old segment's pages: a consumer still mapping them keeps
// reading whole records that the dead producer had published, and a record
// the producer was writing when it died is invisible because tail was not
// advanced. Each segment has a random 64-bit generation. The producer holds
// an exclusive flock(2) on the segment for its whole life; the kernel drops
// it when the process dies, however it dies, so a consumer that finds the
// ring empty and the lock free knows the producer is gone (ErrProducerDead)
// — and one whose producer is merely stopped or starved of CPU, with a late
// heartbeat, knows it is not. The producer also refreshes a heartbeat every
// Options.Heartbeat, which decides alone where flock does not work (a
// consumer without /proc to reopen a passed memfd), after
// Options.StaleAfter. Close sets a closed flag: the consumer reads what is
// left, then gets io.EOF. Reattach waits for a segment at the path with
// another generation and a live producer, and switches to it.
//
// # Trust
//
// Both processes must trust each other: they share writable memory. The
// consumer bounds-checks every record length and index against the ring
// (ErrCorrupt), so a confused producer cannot make it read outside the
// ring, but a peer that truncates the file under the mapping makes the
// other take SIGBUS. Put segments in a directory only the two may write.
package shmring
