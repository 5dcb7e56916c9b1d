/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Parsing: from an skb to the tuple conntrack and policy see. Every IP packet
 * gets a tuple whatever its L4 protocol, so default deny has no holes: a
 * protocol the parser has no ports for is tracked and looked up with ports 0.
 */
#ifndef DPDBG_LIB_PARSE_H
#define DPDBG_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "maps.h"

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define IPPROTO_MH 135 /* IPv6 mobility header: an extension header */

/* How far the parser reads into a packet; deeper headers are refused. */
#define MAX_HDR_OFF 1024
/* IPv6 extension headers walked before the chain counts as invalid. */
#define MAX_EXT_HDRS 8

/* pkt.frag */
#define FRAG_NONE 0
#define FRAG_FIRST 1   /* offset 0, more fragments follow: carries the ports */
#define FRAG_LATER 2   /* ports found in the frags map */
#define FRAG_UNKNOWN 3 /* ports not found: its first fragment was never seen */

union addr {
	__u32 v4;
	__u8 v6[16];
};

/* The tuple conntrack and policy see. */
struct tuple {
	union addr saddr, daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
};

struct pkt {
	struct tuple t;
	__u8 family;
	__u8 tcp_flags;
	__u8 frag;
	__u8 neigh;    /* ICMPv6 neighbour discovery / MLD: link housekeeping */
	__u8 icmp_err; /* an ICMP error whose quoted tuple is in `inner` */
	__u32 frag_id;
	/*
	 * The connection an ICMP error quotes, reversed: the quoted packet
	 * went the other way, so this has the orientation of the error.
	 */
	struct tuple inner;
};

/*
 * A pointer to `len` bytes at `off` in the packet, or NULL when the packet
 * is shorter. Headers are read in place (a helper call per header costs more
 * than the rest of the fast path); a header beyond the skb's linear part is
 * pulled in first, which only odd packets need.
 */
static __always_inline void *hdr(struct __sk_buff *skb, __u32 off, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	void *h;

	if (off > MAX_HDR_OFF)
		return 0;
	/*
	 * The check must be made on the pointer returned, so the verifier can
	 * see it: the barrier stops clang from folding it into data + (off + len).
	 */
	h = data + off;
	asm volatile("" : "+r"(h));
	if (h + len <= end)
		return h;
	if (off + len > skb->len || bpf_skb_pull_data(skb, off + len) < 0)
		return 0;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (off > MAX_HDR_OFF)
		return 0;
	h = data + off;
	asm volatile("" : "+r"(h));
	if (h + len > end)
		return 0;
	return h;
}

static __always_inline __u16 be16(const __u8 *b)
{
	return ((__u16)b[0] << 8) | b[1];
}

static __always_inline int is_icmp_echo_request(__u8 proto, __u8 type)
{
	return (proto == IPPROTO_ICMP && type == 8) || (proto == IPPROTO_ICMPV6 && type == 128);
}

static __always_inline int is_icmp_echo_reply(__u8 proto, __u8 type)
{
	return (proto == IPPROTO_ICMP && type == 0) || (proto == IPPROTO_ICMPV6 && type == 129);
}

/*
 * The ports of a tuple from the first bytes of its L4 header. ICMP echo
 * uses the identifier as the source port of requests and the destination
 * port of replies, so a reply's reversed tuple finds its request's entry;
 * other ICMP messages are one flow per type and code.
 */
static __always_inline void l4_ports(struct tuple *t, const __u8 *l4)
{
	switch (t->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		t->sport = be16(l4);
		t->dport = be16(l4 + 2);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (is_icmp_echo_request(t->proto, l4[0]))
			t->sport = be16(l4 + 4);
		else if (is_icmp_echo_reply(t->proto, l4[0]))
			t->dport = be16(l4 + 4);
		else
			t->sport = ((__u16)l4[0] << 8) | l4[1];
		break;
	}
}

static __always_inline int is_icmp_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP) /* unreachable, time exceeded, parameter problem */
		return type == 3 || type == 11 || type == 12;
	/* unreachable, packet too big, time exceeded, parameter problem */
	return proto == IPPROTO_ICMPV6 && type >= 1 && type <= 4;
}

/*
 * The connection an ICMP error at `off` quotes (its IP header and the first
 * 8 bytes of its L4 header), stored reversed in p->inner. No inner tuple is
 * not an error: the message is then a flow of its own.
 */
static __noinline void parse_icmp_inner(struct __sk_buff *skb, struct pkt *p, __u32 off)
{
	struct tuple *in = &p->inner;
	__u8 *l4;

	off += 8;
	if (p->family == DPDBG_FAMILY_IPV4) {
		struct iphdr *ip = hdr(skb, off, sizeof(*ip));
		__u32 ihl;

		if (!ip || ip->version != 4 || ip->ihl < 5)
			return;
		ihl = ip->ihl * 4;
		in->saddr.v4 = ip->daddr;
		in->daddr.v4 = ip->saddr;
		in->proto = ip->protocol;
		off += ihl;
	} else {
		struct ipv6hdr *ip6 = hdr(skb, off, sizeof(*ip6));

		if (!ip6 || ip6->version != 6)
			return;
		__builtin_memcpy(in->saddr.v6, &ip6->daddr, 16);
		__builtin_memcpy(in->daddr.v6, &ip6->saddr, 16);
		in->proto = ip6->nexthdr;
		off += sizeof(*ip6);
	}
	l4 = hdr(skb, off, 8);
	if (!l4)
		return;
	{
		struct tuple q = { .proto = in->proto };

		l4_ports(&q, l4);
		in->sport = q.dport;
		in->dport = q.sport;
	}
	p->icmp_err = 1;
}

/*
 * Ports from the L4 header, or from the frags map for a later fragment.
 * Returns 0 or a drop reason.
 */
static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 off, struct trace_result *tr)
{
	struct frag_key fk = {};
	__u8 *l4;

	if (p->frag != FRAG_NONE) {
		if (p->family == DPDBG_FAMILY_IPV4) {
			__builtin_memcpy(fk.saddr, &p->t.saddr.v4, 4);
			__builtin_memcpy(fk.daddr, &p->t.daddr.v4, 4);
		} else {
			__builtin_memcpy(fk.saddr, p->t.saddr.v6, 16);
			__builtin_memcpy(fk.daddr, p->t.daddr.v6, 16);
		}
		fk.id = p->frag_id;
		fk.proto = p->t.proto;
		fk.family = p->family;
	}
	if (p->frag >= FRAG_LATER) {
		struct frag_ports *fp = bpf_map_lookup_elem(&frags, &fk);

		if (!fp) {
			p->frag = FRAG_UNKNOWN;
			return 0;
		}
		p->t.sport = fp->sport;
		p->t.dport = fp->dport;
		return 0;
	}

	switch (p->t.proto) {
	case IPPROTO_TCP:
		l4 = hdr(skb, off, 20);
		if (!l4 || (l4[12] >> 4) < 5)
			return DPDBG_REASON_CT_TRUNCATED;
		p->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
		l4 = hdr(skb, off, 8);
		if (!l4)
			return DPDBG_REASON_CT_TRUNCATED;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		l4 = hdr(skb, off, 8);
		if (!l4)
			return DPDBG_REASON_CT_TRUNCATED;
		if (p->t.proto == IPPROTO_ICMPV6 && ((l4[0] >= 130 && l4[0] <= 137) || l4[0] == 143)) {
			p->neigh = 1;
			return 0;
		}
		if (is_icmp_error(p->t.proto, l4[0]) && p->frag == FRAG_NONE) {
			__u8 type = l4[0], code = l4[1];

			parse_icmp_inner(skb, p, off);
			/* parse_icmp_inner may have pulled data: l4 is stale. */
			p->t.sport = ((__u16)type << 8) | code;
			return 0;
		}
		break;
	default:
		/* No ports we know of: tracked and looked up with ports 0. */
		return 0;
	}
	l4_ports(&p->t, l4);
	if (p->frag == FRAG_FIRST && !tr) {
		struct frag_ports fp = { .sport = p->t.sport, .dport = p->t.dport };

		bpf_map_update_elem(&frags, &fk, &fp, BPF_ANY);
	}
	return 0;
}

static __always_inline int is_ext_hdr(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH || nh == IPPROTO_MH;
}

/* Returns 0 when the packet is IP and parsed, else a reason. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p, struct trace_result *tr)
{
	__u32 off = ETH_HLEN;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = hdr(skb, off, sizeof(*ip));
		__u16 fo;

		if (!ip)
			return DPDBG_REASON_INVALID_PACKET;
		if (ip->version != 4 || ip->ihl < 5 || bpf_ntohs(ip->tot_len) < ip->ihl * 4)
			return DPDBG_REASON_INVALID_PACKET;
		p->family = DPDBG_FAMILY_IPV4;
		p->t.saddr.v4 = ip->saddr;
		p->t.daddr.v4 = ip->daddr;
		p->t.proto = ip->protocol;
		fo = bpf_ntohs(ip->frag_off);
		if (fo & 0x1fff) {
			p->frag = FRAG_LATER;
			p->frag_id = bpf_ntohs(ip->id);
		} else if (fo & 0x2000) {
			p->frag = FRAG_FIRST;
			p->frag_id = bpf_ntohs(ip->id);
		}
		return parse_l4(skb, p, off + ip->ihl * 4, tr);
	}

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = hdr(skb, off, sizeof(*ip6));
		__u8 nh;

		if (!ip6)
			return DPDBG_REASON_INVALID_PACKET;
		if (ip6->version != 6)
			return DPDBG_REASON_INVALID_PACKET;
		p->family = DPDBG_FAMILY_IPV6;
		__builtin_memcpy(p->t.saddr.v6, &ip6->saddr, 16);
		__builtin_memcpy(p->t.daddr.v6, &ip6->daddr, 16);
		nh = ip6->nexthdr;
		off += sizeof(*ip6);

		for (int i = 0; i < MAX_EXT_HDRS; i++) {
			__u8 *eh;

			if (!is_ext_hdr(nh))
				break;
			eh = hdr(skb, off, 8);
			if (!eh)
				return DPDBG_REASON_INVALID_EXTHDR;
			if (nh == IPPROTO_FRAGMENT) {
				__u16 fo = be16(eh + 2);

				p->frag_id = ((__u32)be16(eh + 4) << 16) | be16(eh + 6);
				nh = eh[0];
				off += 8;
				if (fo & 0xfff8) {
					/* What follows is payload, not headers. */
					p->frag = FRAG_LATER;
					p->t.proto = nh;
					return parse_l4(skb, p, off, tr);
				}
				if (fo & 1)
					p->frag = FRAG_FIRST;
				continue;
			}
			if (nh == IPPROTO_AH)
				off += ((__u32)eh[1] + 2) * 4;
			else
				off += ((__u32)eh[1] + 1) * 8;
			nh = eh[0];
		}
		/* A chain longer than we walk, or "no next header": nothing to classify. */
		if (is_ext_hdr(nh) || nh == 59)
			return DPDBG_REASON_INVALID_EXTHDR;
		p->t.proto = nh;
		return parse_l4(skb, p, off, tr);
	}

	return DPDBG_REASON_PASS_OTHER_L3;
}

/*
 * Parses the packet into *p (zeroed first) and, in the dry run, records what
 * the parser found. Returns 0 when the packet is IP and parsed, else a reason.
 */
static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p, struct trace_result *tr)
{
	int r;

	/* `inner` is written before it is read (icmp_err): zeroing it is wasted work per packet. */
	__builtin_memset(p, 0, __builtin_offsetof(struct pkt, inner));
	r = parse(skb, p, tr);
	if (tr) {
		tr->parse = r;
		tr->family = p->family;
		tr->proto = p->t.proto;
		tr->tcp_flags = p->tcp_flags;
		tr->frag = p->frag;
		tr->icmp_err = p->icmp_err;
		tr->neigh = p->neigh;
		tr->sport = p->t.sport;
		tr->dport = p->t.dport;
	}
	return r;
}

#endif
