// Package probe is netdrop's application-level loss probe: a sender that
// paces framed datagrams (package frame) with a token bucket and sends them
// in batches with sendmmsg(2), and a receiver that accounts for every frame
// exactly and attributes the lost ones to stages of the packet path from the
// kernel counters that moved during the run.
//
// Kernel counters say how many packets a host dropped, not whether the
// application's own traffic lost them; a probe says what the application
// lost but not where. The receiver joins the two: the probe socket's own
// drop counter (SO_MEMINFO and SO_RXQ_OVFL) explains frames lost to a full
// receive queue exactly, and the deltas of counters.Snapshot explain the
// rest stage by stage; what nothing explains is reported as unaccounted.
//
// Accounting rules (see Tracker): received + lost + in-flight = frames up to
// the highest sequence seen, and at the end received + lost = sent; loss is
// final only after a reorder window, never negative, never above 100%, and
// duplicates are counted apart, never subtracted from loss. Reordering
// follows RFC 4737, jitter RFC 3550. One-way latency is reported only when
// the two ends share a clock (same host, or --clock-synced).
//
// The control protocol is four frame types: Hello (the sender announces a
// run and waits for HelloAck, so the receiver has read its counters before
// the first data frame), Data, Fin (carrying the number of data frames sent)
// and Report (the receiver's JSON report, sent back after the reorder
// window). It does no I/O beyond its own sockets and prints nothing;
// internal/cli renders its reports.
package probe
