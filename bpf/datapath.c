// SPDX-License-Identifier: GPL-2.0-only
/*
 * dpdbg's datapath: two TC programs on the host side of each endpoint's veth.
 *   from_endpoint  tc ingress of the host veth: traffic the endpoint sends (egress policy)
 *   to_endpoint    tc egress of the host veth: traffic to the endpoint (ingress policy)
 * Each packet: parse, find the endpoint, find the peer's identity, conntrack,
 * policy for new connections, metrics, events.
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
	.aggregation = DPDBG_AGG_MEDIUM,
	.debug = 0,
};

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
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DPDBG_METRICS_MAX);
	__type(key, __u32);
	__type(value, struct metrics_value);
} metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

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

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04

struct pkt {
	union {
		__u32 v4;
		__u8 v6[16];
	} saddr, daddr;
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 no_ports; /* a non-first fragment: L4 header absent */
	__u8 icmp_type;
	__u8 neigh; /* ICMPv6 neighbour discovery / MLD: link housekeeping */
};

/* What events need to know about the packet's fate. */
struct verdict {
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 dir;
	__u8 ct_state;
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

static __always_inline void emit(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v,
				 __u8 type, __u8 subtype, __u8 verdict)
{
	struct event_hdr h = {};
	__u32 cap = cfg.snaplen;

	if (cap > skb->len)
		cap = skb->len;
	if (cap > DPDBG_SNAPLEN_MAX)
		cap = DPDBG_SNAPLEN_MAX;

	h.timestamp_ns = bpf_ktime_get_ns();
	h.type = type;
	h.subtype = subtype;
	h.verdict = verdict;
	h.ct_state = v->ct_state;
	h.direction = v->dir;
	h.family = p->family;
	h.proto = p->proto;
	h.ifindex = skb->ifindex;
	h.endpoint_id = v->endpoint_id;
	h.src_identity = v->src_identity;
	h.dst_identity = v->dst_identity;
	h.orig_len = skb->len;
	h.cap_len = cap;

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

static __always_inline int drop(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v,
				__u8 reason)
{
	count(reason, v->dir, skb->len);
	emit(skb, p, v, DPDBG_EVENT_DROP, reason, DPDBG_VERDICT_DROPPED);
	if (cfg.debug)
		bpf_printk("dpdbg: drop reason %d ifindex %d", reason, skb->ifindex);
	return TC_ACT_SHOT;
}

static __always_inline int parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 off)
{
	if (p->no_ports)
		return 0;

	switch (p->proto) {
	case IPPROTO_TCP: {
		__u8 th[14];

		if (bpf_skb_load_bytes(skb, off, th, sizeof(th)) < 0)
			return DPDBG_REASON_CT_TRUNCATED;
		if ((th[12] >> 4) < 5)
			return DPDBG_REASON_CT_TRUNCATED;
		p->sport = ((__u16)th[0] << 8) | th[1];
		p->dport = ((__u16)th[2] << 8) | th[3];
		p->tcp_flags = th[13];
		return 0;
	}
	case IPPROTO_UDP: {
		__u8 uh[4];

		if (bpf_skb_load_bytes(skb, off, uh, sizeof(uh)) < 0)
			return DPDBG_REASON_CT_TRUNCATED;
		p->sport = ((__u16)uh[0] << 8) | uh[1];
		p->dport = ((__u16)uh[2] << 8) | uh[3];
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 ih[8];
		__u16 id;

		if (bpf_skb_load_bytes(skb, off, ih, sizeof(ih)) < 0)
			return DPDBG_REASON_CT_TRUNCATED;
		p->icmp_type = ih[0];
		id = ((__u16)ih[4] << 8) | ih[5];
		if ((p->proto == IPPROTO_ICMP && ih[0] == 8) ||
		    (p->proto == IPPROTO_ICMPV6 && ih[0] == 128)) {
			p->sport = id; /* echo request */
		} else if ((p->proto == IPPROTO_ICMP && ih[0] == 0) ||
			   (p->proto == IPPROTO_ICMPV6 && ih[0] == 129)) {
			p->dport = id; /* echo reply */
		} else if (p->proto == IPPROTO_ICMPV6 &&
			   ((ih[0] >= 130 && ih[0] <= 137) || ih[0] == 143)) {
			p->neigh = 1;
		} else {
			/* Errors and the rest: one flow per type and code. */
			p->sport = ((__u16)ih[0] << 8) | ih[1];
		}
		return 0;
	}
	default:
		return DPDBG_REASON_PASS_OTHER_L4;
	}
}

/* Returns 0 when the packet is IP and parsed, else a reason. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	__u32 off = ETH_HLEN;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
			return DPDBG_REASON_INVALID_PACKET;
		if (ip.version != 4 || ip.ihl < 5 || bpf_ntohs(ip.tot_len) < ip.ihl * 4)
			return DPDBG_REASON_INVALID_PACKET;
		p->family = DPDBG_FAMILY_IPV4;
		p->saddr.v4 = ip.saddr;
		p->daddr.v4 = ip.daddr;
		p->proto = ip.protocol;
		if (bpf_ntohs(ip.frag_off) & 0x1fff)
			p->no_ports = 1;
		return parse_l4(skb, p, off + ip.ihl * 4);
	}

	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u8 nh;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
			return DPDBG_REASON_INVALID_PACKET;
		if (ip6.version != 6)
			return DPDBG_REASON_INVALID_PACKET;
		p->family = DPDBG_FAMILY_IPV6;
		__builtin_memcpy(p->saddr.v6, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr.v6, &ip6.daddr, 16);
		nh = ip6.nexthdr;
		off += sizeof(ip6);

#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 eh[4];

			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
			    nh != IPPROTO_FRAGMENT)
				break;
			if (bpf_skb_load_bytes(skb, off, eh, sizeof(eh)) < 0)
				return DPDBG_REASON_INVALID_PACKET;
			if (nh == IPPROTO_FRAGMENT) {
				if ((((__u16)eh[2] << 8) | eh[3]) & 0xfff8)
					p->no_ports = 1;
				off += 8;
			} else {
				off += ((__u32)eh[1] + 1) * 8;
			}
			nh = eh[0];
		}
		p->proto = nh;
		return parse_l4(skb, p, off);
	}

	return DPDBG_REASON_PASS_OTHER_L3;
}

static __always_inline void make_ep_key(struct endpoint_key *k, const struct pkt *p, int src)
{
	if (p->family == DPDBG_FAMILY_IPV4)
		__builtin_memcpy(k->addr, src ? (const void *)&p->saddr.v4 : (const void *)&p->daddr.v4, 4);
	else
		__builtin_memcpy(k->addr, src ? p->saddr.v6 : p->daddr.v6, 16);
	k->family = p->family;
}

static __always_inline __u32 peer_identity(const struct pkt *p, int peer_is_src)
{
	struct endpoint_key ek = {};
	struct ipcache_key ik = {};
	struct endpoint_info *ep;
	struct ipcache_value *iv;

	make_ep_key(&ek, p, peer_is_src);
	ep = bpf_map_lookup_elem(&endpoints, &ek);
	if (ep)
		return ep->identity;

	ik.family = p->family;
	ik.prefixlen = 32 + (p->family == DPDBG_FAMILY_IPV4 ? 32 : 128);
	__builtin_memcpy(ik.addr, ek.addr, 16);
	iv = bpf_map_lookup_elem(&ipcache, &ik);
	if (iv)
		return iv->identity;
	return DPDBG_IDENTITY_WORLD;
}

/* Returns the matching rule (or NULL) and sets *match to the level that matched. */
static __always_inline struct policy_value *policy_lookup(__u32 ep, __u32 peer, const struct pkt *p,
							  __u8 dir, __u8 *match)
{
	struct policy_key k = {
		.endpoint_id = ep,
		.identity = peer,
		.dport = (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) ? p->dport : 0,
		.proto = p->proto,
		.direction = dir,
	};
	__u16 dport = k.dport;
	struct policy_value *pv;

	*match = DPDBG_MATCH_L3_L4;
	pv = bpf_map_lookup_elem(&policy, &k);
	if (pv)
		return pv;

	*match = DPDBG_MATCH_L3_ONLY;
	k.dport = 0;
	k.proto = 0;
	pv = bpf_map_lookup_elem(&policy, &k);
	if (pv)
		return pv;

	*match = DPDBG_MATCH_L4_ONLY;
	k.identity = DPDBG_IDENTITY_ANY;
	k.dport = dport;
	k.proto = p->proto;
	pv = bpf_map_lookup_elem(&policy, &k);
	if (pv)
		return pv;

	*match = DPDBG_MATCH_ALL;
	k.dport = 0;
	k.proto = 0;
	pv = bpf_map_lookup_elem(&policy, &k);
	if (pv)
		return pv;

	*match = DPDBG_MATCH_NONE;
	return 0;
}

/*
 * Accounts a packet on an existing entry. Returns 1 when the packet showed
 * TCP flags not seen before in its direction (what aggregation traces).
 */
static __always_inline int ct_touch(struct ct_entry *e, int rev, __u32 len, const struct pkt *p, __u64 now)
{
	int changed = 0;

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

	__u8 flags = e->flags;
	__u32 lifetime;

	if (rev)
		flags |= DPDBG_CT_F_REPLY_SEEN;

	if (p->proto == IPPROTO_TCP) {
		__u8 tf = p->tcp_flags;
		__u8 seen = rev ? e->tcp_flags_rev : e->tcp_flags_fwd;

		if ((seen | tf) != seen) {
			changed = 1;
			if (rev)
				e->tcp_flags_rev = seen | tf;
			else
				e->tcp_flags_fwd = seen | tf;
		}
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
	} else {
		lifetime = DPDBG_CT_LIFETIME_NONTCP;
	}

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
	if (p->proto == IPPROTO_TCP) {
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

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct pkt p = {};
	struct verdict v = { .dir = dir };
	struct endpoint_key ek = {};
	struct endpoint_info *ep;
	__u32 len = skb->len;
	int r;

	r = parse(skb, &p);
	if (r == DPDBG_REASON_PASS_OTHER_L3 || r == DPDBG_REASON_PASS_OTHER_L4) {
		count(r, dir, len);
		return TC_ACT_OK;
	}
	if (r)
		return drop(skb, &p, &v, r);
	if (p.neigh) {
		count(DPDBG_REASON_FORWARDED, dir, len);
		return TC_ACT_OK;
	}

	/* The endpoint is the source when it sends, the destination when it receives. */
	make_ep_key(&ek, &p, dir == DPDBG_DIR_EGRESS);
	ep = bpf_map_lookup_elem(&endpoints, &ek);
	if (!ep || ep->ifindex != skb->ifindex)
		return drop(skb, &p, &v,
			    dir == DPDBG_DIR_EGRESS ? DPDBG_REASON_INVALID_SOURCE_IP : DPDBG_REASON_UNROUTABLE);

	__u32 ep_id = ep->endpoint_id;
	__u32 local = ep->identity;
	__u16 ep_flags = ep->flags;
	/*
	 * The peer's identity costs a hash and an LPM lookup: only new
	 * connections and events need it, so tracked packets that emit no
	 * event skip it (see DESIGN.md, "Measured on this machine").
	 */
	__u32 peer = 0;

	v.endpoint_id = ep_id;

	/* Conntrack: forward tuple, then the reply tuple of the opposite hook. */
	void *ct_map;
	struct ct4_key k4 = {}, r4 = {};
	struct ct6_key k6 = {}, r6 = {};
	void *key, *rkey;

	if (p.family == DPDBG_FAMILY_IPV4) {
		k4.saddr = p.saddr.v4;
		k4.daddr = p.daddr.v4;
		k4.sport = p.sport;
		k4.dport = p.dport;
		k4.proto = p.proto;
		k4.direction = dir;
		r4.saddr = p.daddr.v4;
		r4.daddr = p.saddr.v4;
		r4.sport = p.dport;
		r4.dport = p.sport;
		r4.proto = p.proto;
		r4.direction = dir ^ 1;
		ct_map = &ct4;
		key = &k4;
		rkey = &r4;
	} else {
		__builtin_memcpy(k6.saddr, p.saddr.v6, 16);
		__builtin_memcpy(k6.daddr, p.daddr.v6, 16);
		k6.sport = p.sport;
		k6.dport = p.dport;
		k6.proto = p.proto;
		k6.direction = dir;
		__builtin_memcpy(r6.saddr, p.daddr.v6, 16);
		__builtin_memcpy(r6.daddr, p.saddr.v6, 16);
		r6.sport = p.dport;
		r6.dport = p.sport;
		r6.proto = p.proto;
		r6.direction = dir ^ 1;
		ct_map = &ct6;
		key = &k6;
		rkey = &r6;
	}

	__u64 now = bpf_ktime_get_coarse_ns();
	struct ct_entry *e;
	int trace;

	e = bpf_map_lookup_elem(ct_map, key);
	if (e) {
		v.ct_state = DPDBG_CT_ESTABLISHED;
		trace = ct_touch(e, 0, len, &p, now);
	} else if ((e = bpf_map_lookup_elem(ct_map, rkey))) {
		v.ct_state = DPDBG_CT_REPLY;
		trace = ct_touch(e, 1, len, &p, now);
	} else {
		__u16 enforce = dir == DPDBG_DIR_INGRESS ? DPDBG_EP_ENFORCE_INGRESS : DPDBG_EP_ENFORCE_EGRESS;
		struct ct_entry ne = {};

		v.ct_state = DPDBG_CT_NEW;
		trace = 1;
		peer = peer_identity(&p, dir == DPDBG_DIR_INGRESS);
		v.src_identity = dir == DPDBG_DIR_EGRESS ? local : peer;
		v.dst_identity = dir == DPDBG_DIR_EGRESS ? peer : local;
		if (ep_flags & enforce) {
			__u8 match;
			struct policy_value *pv = policy_lookup(ep_id, peer, &p, dir, &match);
			int deny = !pv || pv->action == DPDBG_POLICY_DENY;

			if (pv) {
				__sync_fetch_and_add(&pv->packets, 1);
				__sync_fetch_and_add(&pv->bytes, len);
			}
			emit(skb, &p, &v, DPDBG_EVENT_POLICY_VERDICT, match,
			     deny ? DPDBG_VERDICT_DROPPED : DPDBG_VERDICT_FORWARDED);
			if (deny)
				return drop(skb, &p, &v,
					    pv ? DPDBG_REASON_POLICY_DENYLIST : DPDBG_REASON_POLICY_DENIED);
		}
		ct_init(&ne, len, &p, v.src_identity, now);
		r = bpf_map_update_elem(ct_map, key, &ne, BPF_NOEXIST);
		/* -EEXIST: another CPU created it first, which is fine. */
		if (r < 0 && r != -17)
			return drop(skb, &p, &v, DPDBG_REASON_CT_MAP_INSERT);
	}

	count(DPDBG_REASON_FORWARDED, dir, len);
	if (cfg.aggregation == DPDBG_AGG_NONE || (cfg.aggregation == DPDBG_AGG_MEDIUM && trace)) {
		if (v.ct_state != DPDBG_CT_NEW) {
			peer = peer_identity(&p, dir == DPDBG_DIR_INGRESS);
			v.src_identity = dir == DPDBG_DIR_EGRESS ? local : peer;
			v.dst_identity = dir == DPDBG_DIR_EGRESS ? peer : local;
		}
		emit(skb, &p, &v, DPDBG_EVENT_TRACE,
		     dir == DPDBG_DIR_INGRESS ? DPDBG_TRACE_TO_ENDPOINT : DPDBG_TRACE_FROM_ENDPOINT,
		     DPDBG_VERDICT_FORWARDED);
	}
	return TC_ACT_OK;
}

SEC("classifier")
int from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DPDBG_DIR_EGRESS);
}

SEC("classifier")
int to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DPDBG_DIR_INGRESS);
}

/* The baseline benchmarks compare against: does nothing, passes everything. */
SEC("classifier")
int empty_prog(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
