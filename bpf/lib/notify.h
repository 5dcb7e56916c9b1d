/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Events: what the datapath tells `monitor` and the server about a packet's
 * fate. One helper per event it sends (send_drop_notify, send_trace_notify,
 * send_policy_verdict_notify); in the dry run each records the event in the
 * trace slot instead of sending it.
 */
#ifndef DPDBG_LIB_NOTIFY_H
#define DPDBG_LIB_NOTIFY_H

#include <linux/pkt_cls.h>

#include "identity.h"
#include "maps.h"
#include "metrics.h"
#include "parse.h"

/*
 * The ringbuf record at snap lengths up to DPDBG_SNAPLEN_INLINE: fixed size
 * so it can be reserved without a copy.
 */
struct event_record {
	struct event_hdr hdr;
	__u8 data[DPDBG_SNAPLEN_INLINE];
};

/*
 * Above DPDBG_SNAPLEN_INLINE the record is built in a per-CPU scratch and
 * written at its own length: reserving a jumbo frame's room for every event
 * would fill the ring with padding (a 64-byte packet would take 9 KiB). Its
 * buffer is a power of two at least DPDBG_SNAPLEN_MAX long, so the copy's
 * length can be masked into a range the verifier sees.
 */
#define EVENT_SCRATCH_DATA 16384
_Static_assert(EVENT_SCRATCH_DATA >= DPDBG_SNAPLEN_MAX, "the scratch holds the largest snap length");
_Static_assert((EVENT_SCRATCH_DATA & (EVENT_SCRATCH_DATA - 1)) == 0, "event_output_copied() masks with it");

struct event_scratch_record {
	struct event_hdr hdr;
	__u8 data[EVENT_SCRATCH_DATA];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_scratch_record);
} event_scratch SEC(".maps");

/* Referenced so the ABI test finds the record in the object's BTF. */
struct event_record *dpdbg_abi_event_record __attribute__((unused));

/* What events need to know about the packet's fate. */
struct verdict {
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u8 dir;
	__u8 ct_state;
	__u8 flags;
};

/* The endpoint and the identities of both ends, source and destination by direction. */
static __always_inline void verdict_identities(struct verdict *v, __u8 dir, __u32 endpoint_id, __u32 local,
					       __u32 peer)
{
	v->endpoint_id = endpoint_id;
	v->src_identity = dir == DPDBG_DIR_EGRESS ? local : peer;
	v->dst_identity = dir == DPDBG_DIR_EGRESS ? peer : local;
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

/*
 * A snap length above DPDBG_SNAPLEN_INLINE: the header and `cap` bytes of
 * the packet are copied into the scratch, then into the ring at their length.
 */
static __always_inline void event_output_copied(struct __sk_buff *skb, const struct event_hdr *h, __u32 cap,
						__u8 dir)
{
	__u32 zero = 0;
	struct event_scratch_record *r = bpf_map_lookup_elem(&event_scratch, &zero);

	if (!r) {
		count(DPDBG_REASON_EVENT_LOST, dir, skb->len);
		return;
	}
	r->hdr = *h;
	r->hdr.cap_len = 0;
	if (cap) {
		/* 1 <= cap <= EVENT_SCRATCH_DATA in the verifier's sight (see below for why a mask). */
		cap = ((cap - 1) & (EVENT_SCRATCH_DATA - 1)) + 1;
		if (bpf_skb_load_bytes(skb, 0, r->data, cap) == 0)
			r->hdr.cap_len = cap;
		else
			cap = 0;
	}
	if (bpf_ringbuf_output(&events, r, sizeof(r->hdr) + cap, 0) < 0)
		count(DPDBG_REASON_EVENT_LOST, dir, skb->len);
}

/* Writes the event, with the packet's first bytes, to the ring buffer or the perf array. */
static __noinline void event_output(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v, __u32 ev)
{
	struct event_hdr h = {};
	__u32 cap = fill_hdr(skb, p, v, ev, &h);

	if (cfg.event_transport == DPDBG_TRANSPORT_PERF) {
		/*
		 * The upper 32 bits of flags append that many bytes of the skb
		 * (BPF_F_CTXLEN_MASK: up to 2^20), copied by the kernel at their
		 * length whatever the snap length.
		 */
		__u64 flags = BPF_F_CURRENT_CPU | ((__u64)cap << 32);

		if (bpf_perf_event_output(skb, &events_perf, flags, &h, sizeof(h)) < 0)
			count(DPDBG_REASON_EVENT_LOST, v->dir, skb->len);
		return;
	}
	/* A load-time constant: the verifier keeps one of the two ways and drops the other. */
	if (cfg.snaplen > DPDBG_SNAPLEN_INLINE) {
		event_output_copied(skb, &h, cap, v->dir);
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
	 * Rewritten so the verifier can see 1 <= cap <= DPDBG_SNAPLEN_INLINE (a
	 * power of two); a plain range check loses the lower bound once the
	 * compiler folds it into one unsigned compare.
	 */
	cap = ((cap - 1) & (DPDBG_SNAPLEN_INLINE - 1)) + 1;
	if (bpf_skb_load_bytes(skb, 0, e->data, cap) == 0)
		e->hdr.cap_len = cap;
submit:
	bpf_ringbuf_submit(e, 0);
}

_Static_assert((DPDBG_TRACE_EVENTS_MAX & (DPDBG_TRACE_EVENTS_MAX - 1)) == 0, "send_notify() masks with it");

/* Sends one event, or in the dry run records it in the trace slot. */
static __always_inline void send_notify(struct trace_result *tr, struct __sk_buff *skb, const struct pkt *p,
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
	event_output(skb, p, v, ev);
}

/* A drop event: the packet is dropped for `reason` (the event's subtype). */
static __always_inline void send_drop_notify(struct trace_result *tr, struct __sk_buff *skb, const struct pkt *p,
					     const struct verdict *v, __u8 reason)
{
	send_notify(tr, skb, p, v, EV(DPDBG_EVENT_DROP, reason, DPDBG_VERDICT_DROPPED));
}

/* A trace event: the packet passes the hook at its observation point (to or from the endpoint). */
static __always_inline void send_trace_notify(struct trace_result *tr, struct __sk_buff *skb, const struct pkt *p,
					      const struct verdict *v, __u8 dir)
{
	send_notify(tr, skb, p, v,
		    EV(DPDBG_EVENT_TRACE, dir == DPDBG_DIR_INGRESS ? DPDBG_TRACE_TO_ENDPOINT : DPDBG_TRACE_FROM_ENDPOINT,
		       DPDBG_VERDICT_FORWARDED));
}

/* A policy-verdict event: the deciding level (`match`) and whether it allowed the connection. */
static __always_inline void send_policy_verdict_notify(struct trace_result *tr, struct __sk_buff *skb,
						       const struct pkt *p, const struct verdict *v, __u8 match,
						       int deny)
{
	send_notify(tr, skb, p, v,
		    EV(DPDBG_EVENT_POLICY_VERDICT, match, deny ? DPDBG_VERDICT_DROPPED : DPDBG_VERDICT_FORWARDED));
}

/* Drops the packet: counts it under `reason` and sends the drop event. */
static __always_inline int drop(struct __sk_buff *skb, const struct pkt *p, const struct verdict *v, __u8 reason,
				struct trace_result *tr)
{
	account(tr, reason, v->dir, skb->len);
	send_drop_notify(tr, skb, p, v, reason);
	if (tr)
		tr->ct_state = v->ct_state;
	else if (rt.debug)
		bpf_printk("dpdbg: drop reason %d ifindex %d", reason, skb->ifindex);
	return TC_ACT_SHOT;
}

/*
 * Forwards the packet: counts it and sends its trace event when aggregation
 * asks for one (`trace`: a new connection, a related packet, new TCP flags).
 * `ep` is NULL for a tracked packet, which skipped the endpoint lookup: its
 * event still names its endpoint and identities, looked up only then.
 */
static __always_inline int forward(struct __sk_buff *skb, const struct pkt *p, struct verdict *v, __u8 dir,
				   struct endpoint_info *ep, __u32 len, int trace, struct trace_result *tr)
{
	account(tr, DPDBG_REASON_FORWARDED, dir, len);
	if (tr)
		tr->ct_state = v->ct_state;
	if (rt.aggregation == DPDBG_AGG_NONE || (rt.aggregation == DPDBG_AGG_MEDIUM && trace)) {
		if (!ep) {
			__u32 peer = tr ? peer_identity_of(p, dir == DPDBG_DIR_INGRESS, 0)
					: peer_identity(p, dir == DPDBG_DIR_INGRESS);

			ep = endpoint_of(p, dir);
			verdict_identities(v, dir, ep ? ep->endpoint_id : 0, ep ? ep->identity : 0, peer);
		}
		send_trace_notify(tr, skb, p, v, dir);
	}
	return TC_ACT_OK;
}

#endif
