/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * droptrace.h: the few kernel types droptrace.c reads, written by hand
 * instead of a generated vmlinux.h so that the objects are reproducible on any
 * machine. Every struct carries preserve_access_index: the field offsets below
 * are placeholders that libbpf-style CO-RE relocations (done by cilium/ebpf at
 * load time) rewrite to the running kernel's layout, looked up by field name,
 * including fields the kernel keeps inside anonymous unions.
 */
#ifndef __DROPTRACE_H
#define __DROPTRACE_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef signed short __s16;
typedef unsigned int __u32;
typedef signed int __s32;
typedef unsigned long long __u64;
typedef signed long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/*
 * The UAPI constants this program uses (include/uapi/linux/bpf.h). They are
 * part of the kernel ABI and never change value; <linux/bpf.h> itself is not
 * included because it pulls in the build machine's <asm/types.h>.
 */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};
/* bpf_get_stackid flags: BPF_F_FAST_STACK_CMP. */
#define BPF_F_FAST_STACK_CMP (1ULL << 9)

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct sock *sk;
	struct net_device *dev;
	int skb_iif;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	unsigned char *head;
} __attribute__((preserve_access_index));

#endif /* __DROPTRACE_H */
