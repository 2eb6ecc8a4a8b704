/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * hookdrop.c: the receive-side hook faults of netdrop's lab. A tc program
 * (for a clsact ingress filter in direct-action mode) and an XDP program
 * that drop IPv4 UDP datagrams to one destination port and pass everything
 * else, so ARP and the lab's other traffic are untouched.
 *
 * Self-contained on purpose (no <linux/bpf.h>, no libbpf headers): the
 * object must come out byte for byte the same on any machine with clang,
 * which .ci/bpf-check verifies.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;

#define SEC(name) __attribute__((section(name), used))

/* include/uapi/linux/pkt_cls.h and include/uapi/linux/bpf.h */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define XDP_DROP 1
#define XDP_PASS 2

/* The first fields of struct xdp_md (include/uapi/linux/bpf.h). */
struct xdp_md {
	__u32 data;
	__u32 data_end;
};

/* bpf_skb_load_bytes, helper 26: copies len bytes at offset of the packet. */
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;

/* drop_port is the UDP destination port to drop, in host byte order (the
 * headers are read byte by byte, so the object means the same on either
 * endianness); the lab sets it before loading. */
volatile const __u16 drop_port = 0;

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define IPPROTO_UDP 17

/* match reads Ethernet, IPv4 and UDP headers from hdr (at least 38 bytes)
 * and reports whether the datagram goes to drop_port. */
static __attribute__((always_inline)) int match(const __u8 *hdr)
{
	__u16 proto = (hdr[12] << 8) | hdr[13];
	if (proto != ETH_P_IP)
		return 0;
	const __u8 *ip = hdr + ETH_HLEN;
	if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP)
		return 0;
	__u32 ihl = (ip[0] & 0x0f) * 4;
	if (ihl != 20) /* no IP options in the lab's traffic */
		return 0;
	__u16 dport = (ip[ihl + 2] << 8) | ip[ihl + 3];
	return dport == drop_port;
}

SEC("tc")
int tc_drop_udp(void *skb)
{
	__u8 hdr[ETH_HLEN + 24];
	if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)) < 0)
		return TC_ACT_OK;
	return match(hdr) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("xdp")
int xdp_drop_udp(struct xdp_md *ctx)
{
	const __u8 *data = (const __u8 *)(unsigned long)ctx->data;
	const __u8 *end = (const __u8 *)(unsigned long)ctx->data_end;
	if (data + ETH_HLEN + 24 > end)
		return XDP_PASS;
	return match(data) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
