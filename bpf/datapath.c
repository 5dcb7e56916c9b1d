// SPDX-License-Identifier: GPL-2.0-only
/*
 * dpdbg's datapath: two TC programs on the host side of each endpoint's veth.
 *   from_endpoint  tc ingress of the host veth: traffic the endpoint sends (egress policy)
 *   to_endpoint    tc egress of the host veth: traffic to the endpoint (ingress policy)
 * Each packet: parse, find the endpoint, conntrack, policy for new
 * connections (and the peer's identity they need), metrics, events.
 *
 * Every IP packet goes through the same path whatever its L4 protocol, so
 * default deny has no holes: a protocol the parser has no ports for is
 * tracked and looked up with ports 0.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/dpdbg.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader (EbpfLoader::override_global); these are the defaults. */
const volatile struct dp_config cfg = {
	.event_transport = DPDBG_TRANSPORT_RINGBUF,
	.snaplen = 128,
};

/* Changed at run time through the pinned .data map (maps/settings). */
volatile struct dp_runtime rt = {
	.aggregation = DPDBG_AGG_MEDIUM,
	.debug = 0,
};

/*
 * Filled in by the loader from clock_probe's sample (see dpdbg.h); in .data
 * with the run-time settings, so the pinned settings map carries it.
 */
SEC(".data") volatile struct dp_clock clk = {
	.ns_per_jiffy = 0,
	.offset_ns = 0,
};

/* Written by clock_probe, read by the loader (.bss). */
struct clock_sample clock_sample;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
} ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct4_key);
	__type(value, struct ct_entry);
} ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct ct6_key);
	__type(value, struct ct_entry);
} ct6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
} frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DPDBG_METRICS_MAX);
	__type(key, __u32);
	__type(value, struct metrics_value);
} metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* One slot the dry-run programs of `dpdbg trace` write their record to. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_result);
} trace_result SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events_perf SEC(".maps");

/* The ringbuf record: fixed size so it can be reserved without a copy. */
struct event_record {
	struct event_hdr hdr;
	__u8 data[DPDBG_SNAPLEN_MAX];
};

/*
 * Referenced so the ABI test finds these types in the object's BTF even
 * though no map is declared with them.
 */
struct event_record *dpdbg_abi_event_record __attribute__((unused));
struct dpdbg_abi_enums *dpdbg_abi_enums __attribute__((unused));

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

/* What events need to know about the packet's fate. */
struct verdict {
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 dir;
	__u8 ct_state;
	__u8 flags;
};

static __always_inline void count(__u32 reason, __u8 dir, __u32 len)
{
	__u32 idx = reason * 2 + dir;
	struct metrics_value *m = bpf_map_lookup_elem(&metrics, &idx);

	/* Per-CPU slot: plain adds are race free. */
	if (m) {
		m->packets++;
		m->bytes += len;
	}
}

/*
 * The slow paths (events, identity and policy lookups) are functions of
 * their own, not inlined: the established path then keeps a small stack
 * frame and its code stays compact.
 */
/* type, subtype and verdict in one argument: BPF functions take five at most. */
#define EV(type, subtype, verdict) ((__u32)(type) | ((__u32)(subtype) << 8) | ((__u32)(verdict) << 16))

static __always_inline __u32 fill_hdr(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v, __u32 ev,
				     struct event_hdr *h)
{
	__u32 cap = cfg.snaplen;

	if (cap > skb->len)
		cap = skb->len;
	if (cap > DPDBG_SNAPLEN_MAX)
		cap = DPDBG_SNAPLEN_MAX;

	h->timestamp_ns = bpf_ktime_get_ns();
	h->type = ev & 0xff;
	h->subtype = (ev >> 8) & 0xff;
	h->verdict = (ev >> 16) & 0xff;
	h->ct_state = v->ct_state;
	h->direction = v->dir;
	h->family = p->family;
	h->proto = p->t.proto;
	h->flags = v->flags | (p->frag != FRAG_NONE ? DPDBG_EVF_FRAGMENT : 0);
	h->ifindex = skb->ifindex;
	h->endpoint_id = v->endpoint_id;
	h->src_identity = v->src_identity;
	h->dst_identity = v->dst_identity;
	h->orig_len = skb->len;
	h->cap_len = cap;
	return cap;
}

static __noinline void emit(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v, __u32 ev)
{
	struct event_hdr h = {};
	__u32 cap = fill_hdr(skb, p, v, ev, &h);

	if (cfg.event_transport == DPDBG_TRANSPORT_PERF) {
		/* The upper 32 bits of flags append that many bytes of the skb. */
		__u64 flags = BPF_F_CURRENT_CPU | ((__u64)cap << 32);

		if (bpf_perf_event_output(skb, &events_perf, flags, &h, sizeof(h)) < 0)
			count(DPDBG_REASON_EVENT_LOST, v->dir, skb->len);
		return;
	}

	struct event_record *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(DPDBG_REASON_EVENT_LOST, v->dir, skb->len);
		return;
	}
	e->hdr = h;
	e->hdr.cap_len = 0;
	if (cap == 0)
		goto submit;
	/*
	 * Rewritten so the verifier can see 1 <= cap <= DPDBG_SNAPLEN_MAX (a
	 * power of two); a plain range check loses the lower bound once the
	 * compiler folds it into one unsigned compare.
	 */
	cap = ((cap - 1) & (DPDBG_SNAPLEN_MAX - 1)) + 1;
	if (bpf_skb_load_bytes(skb, 0, e->data, cap) == 0)
		e->hdr.cap_len = cap;
submit:
	bpf_ringbuf_submit(e, 0);
}

/*
 * The side effects of a packet's fate. `tr` is NULL in the live programs
 * (a constant: the compiler removes every branch on it) and the trace
 * slot in the dry-run ones, which record instead of acting.
 */
static __always_inline void account(struct trace_result *tr, __u32 reason, __u8 dir, __u32 len)
{
	if (tr)
		tr->reason = reason;
	else
		count(reason, dir, len);
}

_Static_assert((DPDBG_TRACE_EVENTS_MAX & (DPDBG_TRACE_EVENTS_MAX - 1)) == 0, "send() masks with it");

static __always_inline void send(struct trace_result *tr, struct __sk_buff *skb, const struct pkt *p,
				 const struct verdict *v, __u32 ev)
{
	if (tr) {
		__u32 n = tr->nevents;

		if (n >= DPDBG_TRACE_EVENTS_MAX)
			return;
		/*
		 * The mask (the count is a power of two) keeps the bound in sight
		 * of the verifier, which can lose a compare clang has reshaped.
		 */
		asm volatile("" : "+r"(n));
		n &= DPDBG_TRACE_EVENTS_MAX - 1;
		fill_hdr(skb, p, v, ev, &tr->events[n]);
		tr->nevents = n + 1;
		return;
	}
	emit(skb, p, v, ev);
}

static __always_inline int drop(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v, __u8 reason,
				struct trace_result *tr)
{
	account(tr, reason, v->dir, skb->len);
	send(tr, skb, p, v, EV(DPDBG_EVENT_DROP, reason, DPDBG_VERDICT_DROPPED));
	if (tr)
		tr->ct_state = v->ct_state;
	else if (rt.debug)
		bpf_printk("dpdbg: drop reason %d ifindex %d", reason, skb->ifindex);
	return TC_ACT_SHOT;
}

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

static __always_inline void make_ep_key(struct endpoint_key *k, const struct pkt *p, int src)
{
	if (p->family == DPDBG_FAMILY_IPV4)
		__builtin_memcpy(k->addr, src ? (const void *)&p->t.saddr.v4 : (const void *)&p->t.daddr.v4, 4);
	else
		__builtin_memcpy(k->addr, src ? p->t.saddr.v6 : p->t.daddr.v6, 16);
	k->family = p->family;
}

static __always_inline __u32 peer_identity_of(const struct pkt *p, int peer_is_src, struct trace_result *tr)
{
	struct endpoint_key ek = {};
	struct ipcache_key ik = {};
	struct endpoint_info *ep;
	struct ipcache_value *iv;

	make_ep_key(&ek, p, peer_is_src);
	ep = bpf_map_lookup_elem(&endpoints, &ek);
	if (ep) {
		if (tr)
			tr->peer_source = DPDBG_TRACE_PEER_ENDPOINT;
		return ep->identity;
	}

	ik.family = p->family;
	ik.prefixlen = 32 + (p->family == DPDBG_FAMILY_IPV4 ? 32 : 128);
	__builtin_memcpy(ik.addr, ek.addr, 16);
	iv = bpf_map_lookup_elem(&ipcache, &ik);
	if (iv) {
		if (tr)
			tr->peer_source = DPDBG_TRACE_PEER_IPCACHE;
		return iv->identity;
	}
	if (tr)
		tr->peer_source = DPDBG_TRACE_PEER_WORLD;
	return DPDBG_IDENTITY_WORLD;
}

static __noinline __u32 peer_identity(const struct pkt *p, int peer_is_src)
{
	return peer_identity_of(p, peer_is_src, 0);
}

/* The live programs call the out-of-line copy; the dry ones record where the identity came from. */
static __always_inline __u32 peer_of(const struct pkt *p, int peer_is_src, struct trace_result *tr)
{
	__u32 id;

	if (!tr)
		return peer_identity(p, peer_is_src);
	id = peer_identity_of(p, peer_is_src, tr);
	tr->peer_identity = id;
	return id;
}

/*
 * Cilium's deny precedence: every level is looked up (L3+L4, L3 only, L4
 * only, any); a deny at any level wins over an allow at any level, and
 * among allows any match allows. Returns the deciding rule (NULL: no rule
 * matched), its level in *match, and whether a deny overrode an allow.
 */
static __always_inline struct policy_value *policy_lookup_in(__u32 ep, __u32 peer, const struct pkt *p, __u8 dir,
							      __u8 *match_overrode, struct trace_result *tr)
{
	struct policy_key k = {
		.endpoint_id = ep,
		.direction = dir,
	};
	__u16 dport = (p->t.proto == IPPROTO_TCP || p->t.proto == IPPROTO_UDP) ? p->t.dport : 0;
	struct policy_value *allow = 0, *deny = 0, *pv;
	__u8 allow_match = DPDBG_MATCH_NONE, deny_match = DPDBG_MATCH_NONE;

	/* Most specific first, so the first of each action found is the one reported. */
#pragma unroll
	for (int level = DPDBG_MATCH_L3_L4; level <= DPDBG_MATCH_ALL; level++) {
		int l4 = level == DPDBG_MATCH_L3_L4 || level == DPDBG_MATCH_L4_ONLY;
		int l3 = level == DPDBG_MATCH_L3_L4 || level == DPDBG_MATCH_L3_ONLY;

		k.identity = l3 ? peer : DPDBG_IDENTITY_ANY;
		k.dport = l4 ? dport : 0;
		k.proto = l4 ? p->t.proto : 0;
		pv = bpf_map_lookup_elem(&policy, &k);
		if (tr) {
			tr->policy_keys[level - 1] = k;
			tr->policy[level - 1] = !pv			       ? DPDBG_TRACE_POLICY_ABSENT
						: pv->action == DPDBG_POLICY_DENY ? DPDBG_TRACE_POLICY_DENY
										  : DPDBG_TRACE_POLICY_ALLOW;
		}
		if (!pv)
			continue;
		if (pv->action == DPDBG_POLICY_DENY) {
			if (!deny) {
				deny = pv;
				deny_match = level;
			}
		} else if (!allow) {
			allow = pv;
			allow_match = level;
		}
	}
	/* Five arguments at most: the level and the override share one byte. */
	if (deny) {
		*match_overrode = deny_match | (allow ? 0x80 : 0);
		return deny;
	}
	*match_overrode = allow_match;
	return allow;
}

static __noinline struct policy_value *policy_lookup(__u32 ep, __u32 peer, const struct pkt *p, __u8 dir,
						     __u8 *match_overrode)
{
	return policy_lookup_in(ep, peer, p, dir, match_overrode, 0);
}

/*
 * Accounts a packet on an existing entry. Returns 1 when the packet showed
 * TCP flags not seen before in its direction (what aggregation traces).
 */
static __always_inline int ct_touch(struct ct_entry *e, int rev, __u32 len, const struct pkt *p, __u64 now,
				    struct trace_result *tr)
{
	int changed = 0;

	if (tr) {
		/* What the live path returns, without its writes. */
		__u8 seen = rev ? e->tcp_flags_rev : e->tcp_flags_fwd;

		tr->ct = *e;
		return p->t.proto == IPPROTO_TCP && (seen | p->tcp_flags) != seen;
	}
	if (rev) {
		__sync_fetch_and_add(&e->packets_rev, 1);
		__sync_fetch_and_add(&e->bytes_rev, len);
	} else {
		__sync_fetch_and_add(&e->packets_fwd, 1);
		__sync_fetch_and_add(&e->bytes_fwd, len);
	}
	/* The coarse clock ticks every few ms: skip the store when it has not moved. */
	if (e->last_seen_ns != now)
		e->last_seen_ns = now;

	if (p->t.proto != IPPROTO_TCP) {
		if (rev && !(e->flags & DPDBG_CT_F_REPLY_SEEN))
			e->flags |= DPDBG_CT_F_REPLY_SEEN;
		return 0;
	}

	__u8 tf = p->tcp_flags;
	__u8 seen = rev ? e->tcp_flags_rev : e->tcp_flags_fwd;

	/* An established flow shows no new flags and no FIN/RST: nothing to store. */
	if ((seen | tf) == seen && !(tf & (TCP_FLAG_FIN | TCP_FLAG_RST)) &&
	    (e->flags & DPDBG_CT_F_SEEN_NON_SYN) && (!rev || (e->flags & DPDBG_CT_F_REPLY_SEEN)))
		return 0;

	__u8 flags = e->flags;
	__u32 lifetime;

	if ((seen | tf) != seen) {
		changed = 1;
		if (rev)
			e->tcp_flags_rev = seen | tf;
		else
			e->tcp_flags_fwd = seen | tf;
	}
	if (rev)
		flags |= DPDBG_CT_F_REPLY_SEEN;
	if (!(tf & TCP_FLAG_SYN))
		flags |= DPDBG_CT_F_SEEN_NON_SYN;
	if (tf & TCP_FLAG_RST)
		flags |= DPDBG_CT_F_CLOSING_FWD | DPDBG_CT_F_CLOSING_REV;
	else if (tf & TCP_FLAG_FIN)
		flags |= rev ? DPDBG_CT_F_CLOSING_REV : DPDBG_CT_F_CLOSING_FWD;

	if ((flags & (DPDBG_CT_F_CLOSING_FWD | DPDBG_CT_F_CLOSING_REV)) ==
	    (DPDBG_CT_F_CLOSING_FWD | DPDBG_CT_F_CLOSING_REV))
		lifetime = DPDBG_CT_LIFETIME_CLOSE;
	else if ((flags & DPDBG_CT_F_REPLY_SEEN) && (flags & DPDBG_CT_F_SEEN_NON_SYN))
		lifetime = DPDBG_CT_LIFETIME_TCP;
	else
		lifetime = DPDBG_CT_LIFETIME_TCP_SYN;

	if (flags != e->flags)
		e->flags = flags;
	if (lifetime != e->lifetime_s)
		e->lifetime_s = lifetime;
	return changed;
}

static __always_inline void ct_init(struct ct_entry *e, __u32 len, const struct pkt *p, __u32 src_identity,
				   __u64 now)
{
	e->created_ns = now;
	e->last_seen_ns = now;
	e->packets_fwd = 1;
	e->bytes_fwd = len;
	e->src_identity = src_identity;
	if (p->t.proto == IPPROTO_TCP) {
		e->tcp_flags_fwd = p->tcp_flags;
		if (!(p->tcp_flags & TCP_FLAG_SYN))
			e->flags |= DPDBG_CT_F_SEEN_NON_SYN;
		if (p->tcp_flags & TCP_FLAG_RST)
			e->flags |= DPDBG_CT_F_CLOSING_FWD | DPDBG_CT_F_CLOSING_REV;
		else if (p->tcp_flags & TCP_FLAG_FIN)
			e->flags |= DPDBG_CT_F_CLOSING_FWD;
		e->lifetime_s = (p->tcp_flags & TCP_FLAG_SYN) ? DPDBG_CT_LIFETIME_TCP_SYN : DPDBG_CT_LIFETIME_TCP;
	} else {
		e->lifetime_s = DPDBG_CT_LIFETIME_NONTCP;
	}
}

/*
 * An entry that no longer stands for a live connection: past its lifetime
 * (so no daemon is needed for correctness), or closing and met by a new SYN
 * (the tuple is being reused, 2). Both are treated as absent.
 */
static __always_inline int ct_stale(const struct ct_entry *e, const struct pkt *p, __u64 now, int *reopen)
{
	if (e->last_seen_ns + (__u64)e->lifetime_s * 1000000000ULL < now)
		return 1;
	if (p->t.proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN &&
	    (e->flags & (DPDBG_CT_F_CLOSING_FWD | DPDBG_CT_F_CLOSING_REV))) {
		*reopen = 1;
		return 2;
	}
	return 0;
}

static __always_inline void ct4_keys(struct ct4_key *k, const struct tuple *t, __u8 dir, int reverse)
{
	k->saddr = reverse ? t->daddr.v4 : t->saddr.v4;
	k->daddr = reverse ? t->saddr.v4 : t->daddr.v4;
	k->sport = reverse ? t->dport : t->sport;
	k->dport = reverse ? t->sport : t->dport;
	k->proto = t->proto;
	k->direction = reverse ? dir ^ 1 : dir;
	k->pad = 0;
}

static __always_inline void ct6_keys(struct ct6_key *k, const struct tuple *t, __u8 dir, int reverse)
{
	__builtin_memcpy(k->saddr, reverse ? t->daddr.v6 : t->saddr.v6, 16);
	__builtin_memcpy(k->daddr, reverse ? t->saddr.v6 : t->daddr.v6, 16);
	k->sport = reverse ? t->dport : t->sport;
	k->dport = reverse ? t->sport : t->dport;
	k->proto = t->proto;
	k->direction = reverse ? dir ^ 1 : dir;
	k->pad = 0;
}

/* Key of `t` (reverse: of its reply) for the table of its family. */
union ct_key {
	struct ct4_key k4;
	struct ct6_key k6;
};

static __always_inline void ct_key(union ct_key *k, const struct pkt *p, const struct tuple *t, __u8 dir,
				   int reverse)
{
	if (p->family == DPDBG_FAMILY_IPV4)
		ct4_keys(&k->k4, t, dir, reverse);
	else
		ct6_keys(&k->k6, t, dir, reverse);
}

/*
 * Each map operation names its map as a constant: the verifier then inlines
 * the lookup. Through a pointer chosen at run time it would be the generic
 * helper, an indirect call that costs a retpoline on every packet.
 */
static __always_inline struct ct_entry *ct_lookup(const struct pkt *p, union ct_key *k)
{
	struct ct_entry *e;

	/*
	 * The two no-op instructions differ, so clang cannot sink both lookups
	 * into one call whose map is a phi (which would not be inlined). An
	 * empty asm would do, but clang 14 then emits line info the kernel refuses.
	 */
	if (p->family == DPDBG_FAMILY_IPV4) {
		e = bpf_map_lookup_elem(&ct4, &k->k4);
		asm volatile("%0 = %0" : "+r"(e));
	} else {
		e = bpf_map_lookup_elem(&ct6, &k->k6);
		asm volatile("%0 = %0\n\t%0 = %0" : "+r"(e));
	}
	return e;
}

static __always_inline void ct_delete(const struct pkt *p, union ct_key *k)
{
	if (p->family == DPDBG_FAMILY_IPV4)
		bpf_map_delete_elem(&ct4, &k->k4);
	else
		bpf_map_delete_elem(&ct6, &k->k6);
}

static __always_inline int ct_insert(const struct pkt *p, union ct_key *k, struct ct_entry *e, __u64 flags)
{
	if (p->family == DPDBG_FAMILY_IPV4)
		return bpf_map_update_elem(&ct4, &k->k4, e, flags);
	return bpf_map_update_elem(&ct6, &k->k6, e, flags);
}

/* CLOCK_MONOTONIC_COARSE nanoseconds, from jiffies once the loader has calibrated them. */
static __always_inline __u64 monotonic_now(void)
{
	__u64 ns_per_jiffy = clk.ns_per_jiffy;

	if (!ns_per_jiffy)
		return bpf_ktime_get_coarse_ns();
	return bpf_jiffies64() * ns_per_jiffy + clk.offset_ns;
}

/* The endpoint the packet belongs to: its source when it sends, its destination when it receives. */
static __always_inline struct endpoint_info *endpoint_of(const struct pkt *p, __u8 dir)
{
	struct endpoint_key ek = {};

	make_ep_key(&ek, p, dir == DPDBG_DIR_EGRESS);
	return bpf_map_lookup_elem(&endpoints, &ek);
}

/*
 * A tracked entry for this packet on this interface, or NULL. An entry of
 * another interface is not ours to use (*replace: the new entry overwrites
 * it once the endpoint is confirmed); a stale one is deleted.
 */
static __always_inline struct ct_entry *ct_find(union ct_key *key, const struct pkt *p, __u32 ifindex, __u64 now,
						int *reopen, int *replace, struct trace_result *tr, int slot)
{
	struct ct_entry *e = ct_lookup(p, key);
	int stale;

	if (!e) {
		if (tr)
			tr->ct_lookup[slot & 3] = DPDBG_TRACE_CT_ABSENT;
		return 0;
	}
	if (e->ifindex != ifindex) {
		*replace = 1;
		if (tr)
			tr->ct_lookup[slot & 3] = DPDBG_TRACE_CT_OTHER_IF;
		return 0;
	}
	stale = ct_stale(e, p, now, reopen);
	if (stale) {
		if (tr)
			tr->ct_lookup[slot & 3] = stale == 2 ? DPDBG_TRACE_CT_CLOSED : DPDBG_TRACE_CT_EXPIRED;
		else
			ct_delete(p, key);
		return 0;
	}
	if (tr)
		tr->ct_lookup[slot & 3] = DPDBG_TRACE_CT_FOUND;
	return e;
}

/*
 * One packet through the datapath. `tr` is NULL for the live programs; the
 * dry-run pair passes its trace slot, and every write to a live map, every
 * counter and every event below is then recorded there instead.
 */
static __always_inline int handle(struct __sk_buff *skb, __u8 dir, struct trace_result *tr)
{
	struct pkt p;
	struct verdict v = { .dir = dir };
	struct endpoint_info *ep = 0;
	__u32 len = skb->len;
	__u32 ifindex = skb->ifindex;
	int r;

	/* `inner` is written before it is read (icmp_err): zeroing it is wasted work per packet. */
	__builtin_memset(&p, 0, __builtin_offsetof(struct pkt, inner));
	r = parse(skb, &p, tr);
	if (tr) {
		tr->parse = r;
		tr->family = p.family;
		tr->proto = p.t.proto;
		tr->tcp_flags = p.tcp_flags;
		tr->frag = p.frag;
		tr->icmp_err = p.icmp_err;
		tr->neigh = p.neigh;
		tr->sport = p.t.sport;
		tr->dport = p.t.dport;
	}
	if (r == DPDBG_REASON_PASS_OTHER_L3) {
		account(tr, r, dir, len);
		return TC_ACT_OK;
	}
	if (r)
		return drop(skb, &p, &v, r, tr);
	if (p.neigh) {
		account(tr, DPDBG_REASON_FORWARDED, dir, len);
		return TC_ACT_OK;
	}

	union ct_key key;
	__u64 now = monotonic_now();
	struct ct_entry *e = 0;
	int trace = 0, reopen = 0, replace = 0;

	/*
	 * Conntrack first: a tracked packet on its entry's interface needs no
	 * endpoint lookup (the entry's first packet passed that check), which
	 * halves the cost of the established path.
	 */
	if (p.frag != FRAG_UNKNOWN) {
		/* An ICMP error quoting a tracked connection passes as that connection passes. */
		if (p.icmp_err) {
			int ignored = 0;

			ct_key(&key, &p, &p.inner, dir, 0);
			e = ct_find(&key, &p, ifindex, now, &ignored, &ignored, tr, DPDBG_TRACE_CT_RELATED_FWD);
			if (!e) {
				ct_key(&key, &p, &p.inner, dir, 1);
				e = ct_find(&key, &p, ifindex, now, &ignored, &ignored, tr, DPDBG_TRACE_CT_RELATED_REV);
			}
			if (e) {
				v.ct_state = DPDBG_CT_RELATED;
				if (tr)
					tr->ct = *e;
				trace = 1;
				goto forward;
			}
		}
		ct_key(&key, &p, &p.t, dir, 0);
		e = ct_find(&key, &p, ifindex, now, &reopen, &replace, tr, DPDBG_TRACE_CT_FWD);
		if (e) {
			v.ct_state = DPDBG_CT_ESTABLISHED;
			trace = ct_touch(e, 0, len, &p, now, tr);
			goto forward;
		}
		if (!replace && !reopen) {
			ct_key(&key, &p, &p.t, dir, 1);
			e = ct_find(&key, &p, ifindex, now, &reopen, &replace, tr, DPDBG_TRACE_CT_REV);
			if (e) {
				v.ct_state = DPDBG_CT_REPLY;
				trace = ct_touch(e, 1, len, &p, now, tr);
				goto forward;
			}
		}
	}

	ep = endpoint_of(&p, dir);
	if (tr) {
		tr->ep_state = !ep			    ? DPDBG_TRACE_EP_ABSENT
			       : ep->ifindex != ifindex ? DPDBG_TRACE_EP_OTHER_IF
							: DPDBG_TRACE_EP_FOUND;
		if (ep)
			tr->ep = *ep;
	}
	if (!ep || ep->ifindex != ifindex)
		return drop(skb, &p, &v,
			    dir == DPDBG_DIR_EGRESS ? DPDBG_REASON_INVALID_SOURCE_IP : DPDBG_REASON_UNROUTABLE, tr);

	__u32 local = ep->identity;
	__u16 enforced = ep->flags & (dir == DPDBG_DIR_INGRESS ? DPDBG_EP_ENFORCE_INGRESS : DPDBG_EP_ENFORCE_EGRESS);
	__u32 peer = peer_of(&p, dir == DPDBG_DIR_INGRESS, tr);

	v.endpoint_id = ep->endpoint_id;
	v.src_identity = dir == DPDBG_DIR_EGRESS ? local : peer;
	v.dst_identity = dir == DPDBG_DIR_EGRESS ? peer : local;
	if (tr)
		tr->enforced = enforced != 0;

	if (p.frag == FRAG_UNKNOWN) {
		/* No ports, so no conntrack entry and no policy key to decide with. */
		if (enforced)
			return drop(skb, &p, &v, DPDBG_REASON_FRAG_NOT_FOUND, tr);
		account(tr, DPDBG_REASON_FORWARDED, dir, len);
		return TC_ACT_OK;
	}

	{
		struct ct_entry ne = {};

		v.ct_state = reopen ? DPDBG_CT_REOPENED : DPDBG_CT_NEW;
		trace = 1;
		if (enforced) {
			__u8 mo = 0;
			struct policy_value *pv = tr ? policy_lookup_in(v.endpoint_id, peer, &p, dir, &mo, tr)
						     : policy_lookup(v.endpoint_id, peer, &p, dir, &mo);
			__u8 match = mo & 0x7f, overrode = mo & 0x80;
			int deny = !pv || pv->action == DPDBG_POLICY_DENY;

			if (tr) {
				tr->policy_match = match;
				tr->policy_overrode = overrode != 0;
			} else if (pv) {
				__sync_fetch_and_add(&pv->packets, 1);
				__sync_fetch_and_add(&pv->bytes, len);
			}
			v.flags = overrode ? DPDBG_EVF_DENY_OVERRODE_ALLOW : 0;
			send(tr, skb, &p, &v,
			     EV(DPDBG_EVENT_POLICY_VERDICT, match, deny ? DPDBG_VERDICT_DROPPED : DPDBG_VERDICT_FORWARDED));
			if (deny)
				return drop(skb, &p, &v,
					    pv ? DPDBG_REASON_POLICY_DENYLIST : DPDBG_REASON_POLICY_DENIED, tr);
			v.flags = 0;
		}
		if (tr) {
			tr->ct_create = replace ? DPDBG_TRACE_CREATE_REPLACE : DPDBG_TRACE_CREATE_NEW;
		} else {
			ct_init(&ne, len, &p, v.src_identity, now);
			ne.ifindex = ifindex;
			/* key may hold the reply tuple of the lookups above. */
			ct_key(&key, &p, &p.t, dir, 0);
			r = ct_insert(&p, &key, &ne, replace ? BPF_ANY : BPF_NOEXIST);
			/* -EEXIST: another CPU created it first, which is fine. */
			if (r < 0 && r != -17)
				return drop(skb, &p, &v, DPDBG_REASON_CT_MAP_INSERT, tr);
		}
	}

forward:
	account(tr, DPDBG_REASON_FORWARDED, dir, len);
	if (tr)
		tr->ct_state = v.ct_state;
	if (rt.aggregation == DPDBG_AGG_NONE || (rt.aggregation == DPDBG_AGG_MEDIUM && trace)) {
		if (!ep) {
			/* A tracked packet: the event still names its endpoint and identities. */
			__u32 peer = tr ? peer_identity_of(&p, dir == DPDBG_DIR_INGRESS, 0)
					: peer_identity(&p, dir == DPDBG_DIR_INGRESS);
			__u32 local = 0;

			ep = endpoint_of(&p, dir);
			if (ep) {
				v.endpoint_id = ep->endpoint_id;
				local = ep->identity;
			}
			v.src_identity = dir == DPDBG_DIR_EGRESS ? local : peer;
			v.dst_identity = dir == DPDBG_DIR_EGRESS ? peer : local;
		}
		send(tr, skb, &p, &v,
		     EV(DPDBG_EVENT_TRACE, dir == DPDBG_DIR_INGRESS ? DPDBG_TRACE_TO_ENDPOINT : DPDBG_TRACE_FROM_ENDPOINT,
			DPDBG_VERDICT_FORWARDED));
	}
	return TC_ACT_OK;
}

SEC("classifier")
int from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DPDBG_DIR_EGRESS, 0);
}

SEC("classifier")
int to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DPDBG_DIR_INGRESS, 0);
}

/* The trace slot, cleared, for one dry run. */
static __always_inline struct trace_result *trace_slot(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct trace_result *tr = bpf_map_lookup_elem(&trace_result, &zero);

	if (tr) {
		__builtin_memset(tr, 0, sizeof(*tr));
		tr->ifindex = skb->ifindex;
	}
	return tr;
}

/*
 * The dry-run pair `dpdbg trace` runs with BPF_PROG_TEST_RUN: the same
 * handler as the live programs, against the same maps, but only reading
 * them (see handle()). Never attached.
 */
SEC("classifier")
int trace_from_ep(struct __sk_buff *skb)
{
	struct trace_result *tr = trace_slot(skb);

	if (!tr)
		return TC_ACT_SHOT;
	return handle(skb, DPDBG_DIR_EGRESS, tr);
}

SEC("classifier")
int trace_to_ep(struct __sk_buff *skb)
{
	struct trace_result *tr = trace_slot(skb);

	if (!tr)
		return TC_ACT_SHOT;
	return handle(skb, DPDBG_DIR_INGRESS, tr);
}

/* Run once by the loader (BPF_PROG_TEST_RUN) to relate jiffies to the coarse clock. */
SEC("classifier")
int clock_probe(struct __sk_buff *skb)
{
	clock_sample.jiffies = bpf_jiffies64();
	clock_sample.coarse_ns = bpf_ktime_get_coarse_ns();
	return TC_ACT_OK;
}

/* The baseline benchmarks compare against: does nothing, passes everything. */
SEC("classifier")
int empty_prog(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
