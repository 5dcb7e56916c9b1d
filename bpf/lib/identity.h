/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Identities: the endpoint a packet belongs to, and the identity of its peer
 * (a local endpoint's, else the longest ipcache prefix's, else world).
 */
#ifndef DPDBG_LIB_IDENTITY_H
#define DPDBG_LIB_IDENTITY_H

#include "maps.h"
#include "parse.h"

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

/* The endpoint the packet belongs to: its source when it sends, its destination when it receives. */
static __always_inline struct endpoint_info *endpoint_of(const struct pkt *p, __u8 dir)
{
	struct endpoint_key ek = {};

	make_ep_key(&ek, p, dir == DPDBG_DIR_EGRESS);
	return bpf_map_lookup_elem(&endpoints, &ek);
}

/*
 * The endpoint of a packet that conntrack does not vouch for, or NULL when
 * no endpoint owns its address on this interface. The dry run records what
 * the lookup found.
 */
static __always_inline struct endpoint_info *endpoint_on(const struct pkt *p, __u8 dir, __u32 ifindex,
							 struct trace_result *tr)
{
	struct endpoint_info *ep = endpoint_of(p, dir);

	if (tr) {
		tr->ep_state = !ep			    ? DPDBG_TRACE_EP_ABSENT
			       : ep->ifindex != ifindex ? DPDBG_TRACE_EP_OTHER_IF
							: DPDBG_TRACE_EP_FOUND;
		if (ep)
			tr->ep = *ep;
	}
	if (!ep || ep->ifindex != ifindex)
		return 0;
	return ep;
}

#endif
