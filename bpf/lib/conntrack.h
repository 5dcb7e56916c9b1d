/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Connection tracking, cilium's lifecycle: entries keyed by the tuple of the
 * packet that opened the connection, replies found by the reversed tuple,
 * lifetimes checked by the datapath itself (no daemon needed), a closing TCP
 * entry met by a new SYN reopened, ICMP errors related to what they quote.
 */
#ifndef DPDBG_LIB_CONNTRACK_H
#define DPDBG_LIB_CONNTRACK_H

#include "maps.h"
#include "parse.h"

/* CLOCK_MONOTONIC_COARSE nanoseconds, from jiffies once the loader has calibrated them. */
static __always_inline __u64 monotonic_now(void)
{
	__u64 ns_per_jiffy = clk.ns_per_jiffy;

	if (!ns_per_jiffy)
		return bpf_ktime_get_coarse_ns();
	return bpf_jiffies64() * ns_per_jiffy + clk.offset_ns;
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
 * The conntrack state of a tracked packet, with its entry in *e, or 0 for a
 * packet no usable entry vouches for. An ICMP error quoting a tracked
 * connection is RELATED to it; else the packet's own tuple is looked up
 * (ESTABLISHED), then its reply's (REPLY). *reopen and *replace say why an
 * entry found was not usable: a SYN on a closing one, or another interface's.
 */
static __always_inline __u8 ct_tracked(union ct_key *key, const struct pkt *p, __u8 dir, __u32 ifindex, __u64 now,
				       struct ct_entry **e, int *reopen, int *replace, struct trace_result *tr)
{
	/* An ICMP error quoting a tracked connection passes as that connection passes. */
	if (p->icmp_err) {
		int ignored = 0;

		ct_key(key, p, &p->inner, dir, 0);
		*e = ct_find(key, p, ifindex, now, &ignored, &ignored, tr, DPDBG_TRACE_CT_RELATED_FWD);
		if (!*e) {
			ct_key(key, p, &p->inner, dir, 1);
			*e = ct_find(key, p, ifindex, now, &ignored, &ignored, tr, DPDBG_TRACE_CT_RELATED_REV);
		}
		if (*e)
			return DPDBG_CT_RELATED;
	}
	/*
	 * From the lower port to the higher, a packet is most likely a reply (a
	 * server answering a client's ephemeral port, an ICMP echo reply): its
	 * reverse tuple is looked up first, which spares replies a miss on
	 * their own tuple (a hash lookup, a third of their cost). Taken only
	 * when the order below would give the same answer: the entry is usable
	 * and no entry of the packet's own tuple can be beside it (ct_create
	 * marks both entries DPDBG_CT_F_TWIN when it makes the second one).
	 * Anything else goes the usual way, which looks again. The dry run
	 * always does, and records each lookup.
	 */
	if (!tr && p->t.sport < p->t.dport) {
		int ignored = 0;

		ct_key(key, p, &p->t, dir, 1);
		*e = ct_lookup(p, key);
		if (*e && (*e)->ifindex == ifindex && !((*e)->flags & DPDBG_CT_F_TWIN) &&
		    !ct_stale(*e, p, now, &ignored))
			return DPDBG_CT_REPLY;
	}
	ct_key(key, p, &p->t, dir, 0);
	*e = ct_find(key, p, ifindex, now, reopen, replace, tr, DPDBG_TRACE_CT_FWD);
	if (*e)
		return DPDBG_CT_ESTABLISHED;
	if (*replace || *reopen)
		return 0;
	ct_key(key, p, &p->t, dir, 1);
	*e = ct_find(key, p, ifindex, now, reopen, replace, tr, DPDBG_TRACE_CT_REV);
	if (*e)
		return DPDBG_CT_REPLY;
	return 0;
}

/*
 * Accounts a tracked packet on its entry (`state` from ct_tracked). Returns 1
 * when aggregation traces it: a related packet, or new TCP flags.
 */
static __always_inline int ct_account(struct ct_entry *e, __u8 state, __u32 len, const struct pkt *p, __u64 now,
				      struct trace_result *tr)
{
	if (state == DPDBG_CT_RELATED) {
		if (tr)
			tr->ct = *e;
		return 1;
	}
	return ct_touch(e, state == DPDBG_CT_REPLY, len, p, now, tr);
}

/*
 * When the tuple and its reverse both have entries, both are marked, so a
 * reply does not take the reverse one by the short way (see ct_tracked()).
 */
static __noinline void ct_mark_twins(union ct_key *key, const struct pkt *p, __u8 dir)
{
	struct ct_entry *r, *f;

	ct_key(key, p, &p->t, dir, 1);
	r = ct_lookup(p, key);
	if (!r)
		return;
	r->flags |= DPDBG_CT_F_TWIN;
	ct_key(key, p, &p->t, dir, 0);
	f = ct_lookup(p, key);
	if (f)
		f->flags |= DPDBG_CT_F_TWIN;
}

/*
 * Tracks the new connection this packet opens, on this interface (replace:
 * over another interface's entry for the tuple). Returns 0 or a drop reason.
 */
static __always_inline int ct_create(union ct_key *key, const struct pkt *p, __u8 dir, __u32 ifindex,
				     __u32 src_identity, __u32 len, __u64 now, int replace, int reopen,
				     struct trace_result *tr)
{
	struct ct_entry ne = {};
	int r;

	if (tr) {
		tr->ct_create = replace ? DPDBG_TRACE_CREATE_REPLACE : DPDBG_TRACE_CREATE_NEW;
		return 0;
	}
	ct_init(&ne, len, p, src_identity, now);
	ne.ifindex = ifindex;
	/* key may hold the reply tuple of the lookups above. */
	ct_key(key, p, &p->t, dir, 0);
	r = ct_insert(p, key, &ne, replace ? BPF_ANY : BPF_NOEXIST);
	/* -EEXIST: another CPU created it first, which is fine. */
	if (r < 0 && r != -17)
		return DPDBG_REASON_CT_MAP_INSERT;
	/*
	 * Only a connection opened over an entry of another interface or a
	 * closing one was created without a look at its reverse tuple (the
	 * lookups stopped at its own): one may be there.
	 */
	if (replace || reopen)
		ct_mark_twins(key, p, dir);
	return 0;
}

#endif
