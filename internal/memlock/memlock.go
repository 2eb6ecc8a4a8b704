// Package memlock lifts RLIMIT_MEMLOCK before netdrop loads eBPF objects.
//
// Kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK, whose
// default (8 MiB or less) a tracer's maps can exceed; 5.11 and later charge
// them to the memory cgroup and ignore the limit. cilium/ebpf's rlimit
// package finds out which by creating a BPF map at package init, in every
// run of netdrop, --help included; raising the limit instead, only when a
// program is about to be loaded, is right on both kinds of kernel.
package memlock
