// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * droptrace.c: count packet drops at the skb:kfree_skb tracepoint, in the
 * kernel, keyed by (reason, location, netns, ifindex, protocol[, l4 protocol]
 * [, stack id]), so that user space reads a few hundred map entries per
 * interval instead of one event per dropped packet. Optionally it also counts
 * 5-tuples per row (--flows) and streams every drop through a ring buffer
 * (--events), counting what the ring could not take.
 *
 * Two entry points share one body: a tp_btf program (BTF-typed arguments,
 * stable order skb, location, reason, rx_sk since 5.17) and a classic
 * tracepoint program that reads the record at offsets user space parsed from
 * tracefs events/skb/kfree_skb/format, for kernels without BTF.
 */
#include "droptrace.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58

/*
 * Load-time configuration. User space sets these before loading; the
 * verifier sees them as constants, so disabled features cost nothing.
 */
volatile const __u32 cfg_netns;       /* netns inode to keep, 0 = all */
volatile const __u8 cfg_l4proto;      /* IPPROTO_* to keep, 0 = all */
volatile const __u16 cfg_port;        /* source or destination port, 0 = all */
volatile const __u8 cfg_host_family;  /* 4 or 6 when cfg_host is set, else 0 */
volatile const __u8 cfg_host[16];     /* source or destination address */
volatile const __u8 cfg_reason_set;   /* 1 when cfg_reason filters */
volatile const __u32 cfg_reason;      /* drop reason value to keep */
volatile const __u8 cfg_stacks;       /* sample kernel stacks per row */
/*
 * Walking a kernel stack costs microseconds, more than everything else here
 * together, so stacks are sampled: the first cfg_stack_first drops of each
 * row on each CPU, then one in cfg_stack_every (a power of two). Row counts
 * stay exact; stacks carry sample counts.
 */
volatile const __u32 cfg_stack_first = 8;
volatile const __u32 cfg_stack_every = 1024;
volatile const __u8 cfg_flows;        /* count 5-tuples per row */
/*
 * Reasons that are not loss (SOCKET_CLOSE, QUEUE_PURGE, UNIX_*: user space
 * takes them from its reason table and the kernel's values). Their rows are
 * counted, but get no flow parsing and no stack: that work would be thrown
 * away when the row is classified as noise.
 */
#define MAX_NOISE 8
volatile const __u32 cfg_noise[MAX_NOISE];
volatile const __u8 cfg_noise_n;
volatile const __u8 cfg_events;       /* stream every drop to the ring */
/* Classic tracepoint record offsets; -1 when the field does not exist. */
volatile const __s32 cfg_off_skbaddr = 8;
volatile const __s32 cfg_off_location = 16;
volatile const __s32 cfg_off_protocol = -1;
volatile const __s32 cfg_off_reason = -1;
volatile const __s32 cfg_off_rx_sk = -1;

struct drop_key {
	__u64 location;  /* return address inside the freeing function */
	__u32 reason;    /* enum skb_drop_reason, subsystem in the high 16 bits */
	__u32 netns;     /* inode of the network namespace */
	__u32 ifindex;   /* device the skb was on, else the input device */
	__s32 stack_id;  /* -1 in drops; the sampled stack's id in stack_samples */
	__u16 protocol;  /* ethertype, host order */
	__u8 l4proto;    /* IPPROTO_*, 0 when headers were not parsed */
	__u8 pad[5];
};

struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;     /* host order; ICMP type for ICMP */
	__u16 dport;     /* host order; ICMP code for ICMP */
	__u8 family;     /* 4 or 6, 0 when the headers could not be read */
	__u8 l4proto;
	__u8 pad[2];
};

struct flow_key {
	struct drop_key drop;
	struct flow flow;
};

struct event {
	__u64 ts_ns;
	struct drop_key key;
	struct flow flow;
	__u32 cpu;
	__u32 pad;
};

/* Indexes into the stats array. */
enum {
	STAT_EVENTS_LOST = 0,   /* ring buffer full */
	STAT_DROPS_OVERFLOW,    /* aggregation map full: count not attributed */
	STAT_FLOWS_OVERFLOW,    /* flow map full */
	STAT_STACK_ERRORS,      /* a sampled stack could not be stored */
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct drop_key);
	__type(value, __u64);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

/* Sampled stacks: drop_key with stack_id set -> samples. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct drop_key);
	__type(value, __u64);
} stack_samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Emit BTF for the types user space decodes (bpf2go -type). */
const struct event *unused_event __attribute__((unused));
const struct flow_key *unused_flow_key __attribute__((unused));

/*
 * READ(direct, p, field): in tp_btf programs the arguments are BTF-typed, so
 * the verifier allows plain loads through them (checked, fault-tolerant
 * PROBE_MEM loads, a few cycles each); the classic tracepoint only has raw
 * addresses and must call bpf_probe_read_kernel for every field, which costs
 * a helper call each. direct is a compile-time constant in every caller, so
 * each program keeps only its own branch.
 */
#define READ(direct, p, field) ((direct) ? (p)->field : BPF_CORE_READ(p, field))

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * Count one hit for key in a hash map. The insert uses BPF_NOEXIST so that
 * two CPUs inserting the same key at once do not overwrite each other's
 * first count: the loser finds the winner's entry and adds to it.
 */
static __always_inline int count(void *map, const void *key, __u64 *old)
{
	__u64 one = 1, *v;

	*old = 0;
	v = bpf_map_lookup_elem(map, key);
	if (!v) {
		if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) == 0)
			return 0;
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return -1;
	}
	*old = __sync_fetch_and_add(v, 1);
	return 0;
}

/*
 * count for a per-CPU map: a plain increment, no locked instruction. Only
 * this CPU writes its slot, and a tracing program never runs nested on one
 * CPU (the kernel skips a run that would re-enter it, prog->active), so no
 * other writer can interleave.
 */
static __always_inline int count_percpu(void *map, const void *key, __u64 *old)
{
	__u64 one = 1, *v;

	*old = 0;
	v = bpf_map_lookup_elem(map, key);
	if (!v) {
		if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) == 0)
			return 0;
		v = bpf_map_lookup_elem(map, key);
		if (!v)
			return -1;
	}
	*old = *v;
	*v = *old + 1;
	return 0;
}

struct iphdr_min {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr_min {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * Read the IP and transport headers from skb->head + network_header. The
 * skb may be anywhere on the path, so every read is a probe read and any
 * failure leaves the flow empty rather than guessing.
 */
static __always_inline void parse_flow(const int direct, struct sk_buff *skb, __u16 protocol,
				       struct flow *f)
{
	unsigned char *head = READ(direct, skb, head);
	__u16 nh = READ(direct, skb, network_header);
	__u8 l4[4];
	int l4_ok = 0;
	union {
		struct {
			struct iphdr_min ip;
			__u8 l4[4];
		} v4;
		struct {
			struct ipv6hdr_min ip;
			__u8 l4[4];
		} v6;
	} h;

	if (!head || nh == (__u16)~0U)
		return;
	/* Locally built packets can be freed before skb->protocol is set. */
	if (protocol == 0) {
		__u8 first;
		if (bpf_probe_read_kernel(&first, 1, head + nh))
			return;
		protocol = (first >> 4) == 4 ? ETH_P_IP : (first >> 4) == 6 ? ETH_P_IPV6 : 0;
	}

	/*
	 * One read takes the IP header and the first four bytes after it
	 * (ports, or ICMP type and code) when there are no IP options or
	 * IPv6 extension headers, the common case; each helper call costs.
	 */
	if (protocol == ETH_P_IP) {
		if (bpf_probe_read_kernel(&h.v4, sizeof(h.v4), head + nh))
			return;
		if ((h.v4.ip.ver_ihl >> 4) != 4)
			return;
		f->family = 4;
		f->l4proto = h.v4.ip.protocol;
		__builtin_memcpy(f->saddr, &h.v4.ip.saddr, 4);
		__builtin_memcpy(f->daddr, &h.v4.ip.daddr, 4);
		/* Later fragments carry no transport header. */
		if (h.v4.ip.frag_off & bpf_htons(0x1fff))
			return;
		if ((h.v4.ip.ver_ihl & 0xf) == 5) {
			__builtin_memcpy(l4, h.v4.l4, 4);
			l4_ok = 1;
		} else {
			l4_ok = bpf_probe_read_kernel(l4, 4, head + nh + (h.v4.ip.ver_ihl & 0xf) * 4) == 0;
		}
	} else if (protocol == ETH_P_IPV6) {
		if (bpf_probe_read_kernel(&h.v6, sizeof(h.v6), head + nh))
			return;
		if ((h.v6.ip.ver_tc_flow & bpf_htonl(0xf0000000)) != bpf_htonl(0x60000000))
			return;
		f->family = 6;
		f->l4proto = h.v6.ip.nexthdr;
		__builtin_memcpy(f->saddr, h.v6.ip.saddr, 16);
		__builtin_memcpy(f->daddr, h.v6.ip.daddr, 16);
		__builtin_memcpy(l4, h.v6.l4, 4);
		l4_ok = 1;
	} else {
		return;
	}
	if (!l4_ok)
		return;

	switch (f->l4proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		f->sport = (__u16)l4[0] << 8 | l4[1];
		f->dport = (__u16)l4[2] << 8 | l4[3];
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		f->sport = l4[0];
		f->dport = l4[1];
		break;
	}
}

static __always_inline int is_noise(__u32 reason)
{
#pragma unroll
	for (int i = 0; i < MAX_NOISE; i++) {
		if (i < cfg_noise_n && reason == cfg_noise[i])
			return 1;
	}
	return 0;
}

static __always_inline int host_match(const __u8 *addr)
{
	int n = cfg_host_family == 4 ? 4 : 16;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i < n && addr[i] != cfg_host[i])
			return 0;
	}
	return 1;
}

static __always_inline __u32 sock_netns(const int direct, struct sock *sk)
{
	struct net *net;

	if (!sk || !bpf_core_field_exists(sk->__sk_common.skc_net.net))
		return 0;
	net = READ(direct, sk, __sk_common.skc_net.net);
	if (!net)
		return 0;
	return READ(direct, net, ns.inum);
}

/*
 * rx_sk (6.11+) is the socket that received the packet; it may be NULL. It
 * names the namespace when the skb no longer carries a device, as on the
 * TCP receive path.
 */
static __always_inline int handle(const int direct, void *ctx, struct sk_buff *skb, __u64 location,
				  __u32 reason, __u16 protocol, struct sock *rx_sk)
{
	/*
	 * One flow_key holds the row key and the flow, so that nothing is
	 * copied between them: the BPF stack is 512 bytes.
	 */
	struct flow_key fk = {};
	struct drop_key *key = &fk.drop;
	struct flow *flow = &fk.flow;
	struct net_device *dev;
	__u64 seen;
	int need_flow, noise;

	if (cfg_reason_set && reason != cfg_reason)
		return 0;

	/*
	 * The device's namespace first. skb->dev shares its storage with
	 * other uses once a packet sits in a socket queue (UDP keeps
	 * dev_scratch there), so a device whose namespace cannot be read is
	 * not trusted for the ifindex either.
	 */
	dev = READ(direct, skb, dev);
	if (dev && bpf_core_field_exists(dev->nd_net.net)) {
		struct net *net = READ(direct, dev, nd_net.net);
		if (net)
			key->netns = READ(direct, net, ns.inum);
		if (key->netns)
			key->ifindex = READ(direct, dev, ifindex);
	}
	if (!key->netns)
		key->netns = sock_netns(direct, rx_sk);
	if (!key->netns)
		key->netns = sock_netns(direct, READ(direct, skb, sk));
	if (cfg_netns && key->netns != cfg_netns)
		return 0;
	/* Without a device, the input interface, when the namespace is known. */
	if (!key->ifindex && key->netns)
		key->ifindex = READ(direct, skb, skb_iif);

	key->location = location;
	key->reason = reason;
	key->protocol = protocol;
	key->stack_id = -1;

	/* Only the optional work below looks at it. */
	noise = (cfg_flows || cfg_stacks) && is_noise(reason);
	/* Filters and events need the flow of every drop, noise included. */
	need_flow = (cfg_flows && !noise) || cfg_events || cfg_l4proto || cfg_port || cfg_host_family;
	if (need_flow) {
		parse_flow(direct, skb, protocol, flow);
		/* "icmp" (1) selects ICMPv6 as well. */
		if (cfg_l4proto && flow->l4proto != cfg_l4proto &&
		    !(cfg_l4proto == IPPROTO_ICMP && flow->l4proto == IPPROTO_ICMPV6))
			return 0;
		if (cfg_port && flow->sport != cfg_port && flow->dport != cfg_port)
			return 0;
		if (cfg_port && flow->l4proto != IPPROTO_TCP && flow->l4proto != IPPROTO_UDP)
			return 0;
		if (cfg_host_family) {
			if (flow->family != cfg_host_family)
				return 0;
			if (!host_match(flow->saddr) && !host_match(flow->daddr))
				return 0;
		}
		key->l4proto = flow->l4proto;
		if (protocol == 0)
			key->protocol = flow->family == 4 ? ETH_P_IP : flow->family == 6 ? ETH_P_IPV6 : 0;
	}

	if (count_percpu(&drops, key, &seen))
		stat_inc(STAT_DROPS_OVERFLOW);

	if (cfg_stacks && !noise && (seen < cfg_stack_first || (seen & (cfg_stack_every - 1)) == 0)) {
		long id = bpf_get_stackid(ctx, &stacks, 0);
		if (id < 0) {
			stat_inc(STAT_STACK_ERRORS);
		} else {
			__u64 ignored;
			key->stack_id = (__s32)id;
			if (count(&stack_samples, key, &ignored))
				stat_inc(STAT_STACK_ERRORS);
			key->stack_id = -1;
		}
	}

	if (cfg_flows && !noise && flow->family) {
		__u64 ignored;
		if (count(&flows, &fk, &ignored))
			stat_inc(STAT_FLOWS_OVERFLOW);
	}

	if (cfg_events) {
		struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			stat_inc(STAT_EVENTS_LOST);
			return 0;
		}
		e->ts_ns = bpf_ktime_get_ns();
		e->key = *key;
		e->flow = *flow;
		e->cpu = bpf_get_smp_processor_id();
		e->pad = 0;
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

/*
 * Kernels with BTF. The raw tracepoint's arguments only ever grew at the
 * end: (skb, location) before 5.17, + reason, + rx_sk since 6.11. Reading an
 * argument the kernel does not pass fails verification, so there is one
 * program per shape and user space loads the one the kernel's BTF names.
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb_btf_rxsk, struct sk_buff *skb, void *location, unsigned int reason,
	     struct sock *rx_sk)
{
	return handle(1, ctx, skb, (__u64)location, reason, bpf_ntohs(skb->protocol), rx_sk);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb_btf, struct sk_buff *skb, void *location, unsigned int reason)
{
	return handle(1, ctx, skb, (__u64)location, reason, bpf_ntohs(skb->protocol), 0);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb_btf_noreason, struct sk_buff *skb, void *location)
{
	return handle(1, ctx, skb, (__u64)location, 0, bpf_ntohs(skb->protocol), 0);
}

/*
 * Kernels without BTF: the classic tracepoint record, read at the offsets
 * user space parsed from the format file.
 */
SEC("tracepoint/skb/kfree_skb")
int kfree_skb_tp(void *ctx)
{
	__u64 skbaddr = 0, location = 0, rx_sk = 0;
	__u32 reason = 0;
	__u16 protocol = 0;

	bpf_probe_read_kernel(&skbaddr, sizeof(skbaddr), ctx + cfg_off_skbaddr);
	bpf_probe_read_kernel(&location, sizeof(location), ctx + cfg_off_location);
	if (cfg_off_protocol >= 0)
		bpf_probe_read_kernel(&protocol, sizeof(protocol), ctx + cfg_off_protocol);
	if (cfg_off_reason >= 0)
		bpf_probe_read_kernel(&reason, sizeof(reason), ctx + cfg_off_reason);
	if (cfg_off_rx_sk >= 0)
		bpf_probe_read_kernel(&rx_sk, sizeof(rx_sk), ctx + cfg_off_rx_sk);
	if (!skbaddr)
		return 0;
	return handle(0, ctx, (struct sk_buff *)skbaddr, location, reason, protocol, (struct sock *)rx_sk);
}
