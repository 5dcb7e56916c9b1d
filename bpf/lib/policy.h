/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Policy: cilium's deny precedence over the policy map, and the verdict on a
 * new connection of an endpoint that enforces policy.
 */
#ifndef DPDBG_LIB_POLICY_H
#define DPDBG_LIB_POLICY_H

#include "maps.h"
#include "notify.h"
#include "parse.h"

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

/* Whether the endpoint enforces policy on traffic in this direction. */
static __always_inline int policy_enforced(const struct endpoint_info *ep, __u8 dir, struct trace_result *tr)
{
	__u16 enforced = ep->flags & (dir == DPDBG_DIR_INGRESS ? DPDBG_EP_ENFORCE_INGRESS : DPDBG_EP_ENFORCE_EGRESS);

	if (tr)
		tr->enforced = enforced != 0;
	return enforced != 0;
}

/*
 * The verdict on a new connection under enforcement: looks the rules up,
 * counts the packet on the deciding rule and sends the policy-verdict event.
 * Returns 0 when allowed, else the drop reason (v->flags then says whether a
 * deny overrode an allow, for the drop event too).
 */
static __always_inline int policy_verdict(struct __sk_buff *skb, const struct pkt *p, struct verdict *v, __u8 dir,
					  __u32 peer, __u32 len, struct trace_result *tr)
{
	__u8 mo = 0;
	struct policy_value *pv = tr ? policy_lookup_in(v->endpoint_id, peer, p, dir, &mo, tr)
				     : policy_lookup(v->endpoint_id, peer, p, dir, &mo);
	__u8 match = mo & 0x7f, overrode = mo & 0x80;
	int deny = !pv || pv->action == DPDBG_POLICY_DENY;

	if (tr) {
		tr->policy_match = match;
		tr->policy_overrode = overrode != 0;
	} else if (pv) {
		__sync_fetch_and_add(&pv->packets, 1);
		__sync_fetch_and_add(&pv->bytes, len);
	}
	v->flags = overrode ? DPDBG_EVF_DENY_OVERRODE_ALLOW : 0;
	send_policy_verdict_notify(tr, skb, p, v, match, deny);
	if (deny)
		return pv ? DPDBG_REASON_POLICY_DENYLIST : DPDBG_REASON_POLICY_DENIED;
	v->flags = 0;
	return 0;
}

#endif
