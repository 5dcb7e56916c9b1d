// SPDX-License-Identifier: GPL-2.0-only
/*
 * dpdbg's datapath: two TC programs on the host side of each endpoint's veth.
 *   from_endpoint  tc ingress of the host veth: traffic the endpoint sends (egress policy)
 *   to_endpoint    tc egress of the host veth: traffic to the endpoint (ingress policy)
 * and, from the same handler, the dry-run pair `dpdbg trace` runs.
 *
 * This file holds the programs and the sequence of decisions each packet
 * goes through; the steps live in lib/ (cilium's shape): parse.h, conntrack.h,
 * identity.h, policy.h, notify.h (the events, one helper per kind sent),
 * metrics.h and maps.h (settings and maps). The ABI is include/dpdbg.h.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "include/dpdbg.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/parse.h"
#include "lib/identity.h"
#include "lib/conntrack.h"
#include "lib/notify.h"
#include "lib/policy.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * One packet through the datapath. `tr` is NULL for the live programs; the
 * dry-run pair passes its trace slot, and every write to a live map, every
 * counter and every event below is then recorded there instead.
 */
static __always_inline int handle(struct __sk_buff *skb, __u8 dir, struct trace_result *tr)
{
	struct pkt p;
	struct verdict v = { .dir = dir };
	struct endpoint_info *ep = 0; /* stays NULL for a tracked packet */
	struct ct_entry *e = 0;
	union ct_key key;
	__u32 len = skb->len;
	__u32 ifindex = skb->ifindex;
	__u32 peer;
	__u64 now;
	__u8 state = 0;
	int r, enforced, trace, reopen = 0, replace = 0;

	/* Is it IP, and well formed? Other L3 (ARP) passes, and so does neighbour discovery, untracked. */
	r = parse_packet(skb, &p, tr);
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

	/*
	 * Is it a connection we track? Then it passes on its entry. Conntrack
	 * comes first: a tracked packet on its entry's interface needs no
	 * endpoint lookup (the entry's first packet passed that check), which
	 * halves the cost of the established path.
	 */
	now = monotonic_now();
	if (p.frag != FRAG_UNKNOWN)
		state = ct_tracked(&key, &p, dir, ifindex, now, &e, &reopen, &replace, tr);
	if (state) {
		v.ct_state = state;
		trace = ct_account(e, state, len, &p, now, tr);
		goto pass;
	}

	/* Whose packet is it? An endpoint must own its address on this interface. */
	ep = endpoint_on(&p, dir, ifindex, tr);
	if (!ep)
		return drop(skb, &p, &v,
			    dir == DPDBG_DIR_EGRESS ? DPDBG_REASON_INVALID_SOURCE_IP : DPDBG_REASON_UNROUTABLE, tr);

	/* Who is at the other end, and does the endpoint enforce policy this way? */
	peer = peer_of(&p, dir == DPDBG_DIR_INGRESS, tr);
	verdict_identities(&v, dir, ep->endpoint_id, ep->identity, peer);
	enforced = policy_enforced(ep, dir, tr);

	/* A later fragment whose first was never seen: no ports, so no connection to decide on. */
	if (p.frag == FRAG_UNKNOWN) {
		if (enforced)
			return drop(skb, &p, &v, DPDBG_REASON_FRAG_NOT_FOUND, tr);
		account(tr, DPDBG_REASON_FORWARDED, dir, len);
		return TC_ACT_OK;
	}

	/* A new connection (or a closed one reopened): does policy allow it? */
	v.ct_state = reopen ? DPDBG_CT_REOPENED : DPDBG_CT_NEW;
	if (enforced) {
		r = policy_verdict(skb, &p, &v, dir, peer, len, tr);
		if (r)
			return drop(skb, &p, &v, r, tr);
	}

	/* Track it, so its further packets and its replies pass on the entry. */
	r = ct_create(&key, &p, dir, ifindex, v.src_identity, len, now, replace, reopen, tr);
	if (r)
		return drop(skb, &p, &v, r, tr);
	trace = 1;

	/* Forwarded: counted, and traced as aggregation asks (one exit, so the event code is here once). */
pass:
	return forward(skb, &p, &v, dir, ep, len, trace, tr);
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
