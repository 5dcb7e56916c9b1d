// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kernel drops: packets the kernel frees with a drop reason outside dpdbg's
 * programs (no socket, a full receive queue, netfilter, a bad checksum), from
 * the skb:kfree_skb tracepoint. A raw tracepoint: it takes the tracepoint's
 * arguments as they are (skb, location, reason), needs no BTF-typed context,
 * and the few struct sk_buff and net_device fields it reads are at offsets
 * the loader finds in the running kernel's BTF (kcfg), so one object fits
 * every kernel.
 *
 * Only packets from or to an endpoint's address (the datapath's endpoints
 * map) become events, unless kcfg.all: a busy node frees many packets. An
 * event goes into the datapath's own event buffer (the pinned ring or perf
 * array, shared with the datapath), type DPDBG_EVENT_KERNEL_DROP, the
 * kernel's reason in the subtype, the packet from its network header behind
 * an Ethernet header (the real one when the skb still has it).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/dpdbg.h"

enum dpdbg_kdrop {
	DPDBG_EVENT_KERNEL_DROP = 8, /* event type: cilium's monitor types end at 7 */
	DPDBG_KDROP_REASON_OTHER = 255, /* subtype of a reason above 254 (a subsystem's) */
	DPDBG_KDROP_NO_OFFSET = 0xffff, /* mac_header/network_header unset */
	DPDBG_KDROP_F_NETNS = 0x80, /* event_hdr.flags: the device is in another network namespace */
};

/* Set by the loader from the kernel's BTF (src/kdrop.rs mirrors it). */
struct kdrop_config {
	__u32 event_transport;
	__u32 snaplen;
	__u32 skb_dev; /* offsets in struct sk_buff */
	__u32 skb_head;
	__u32 skb_mac_header;
	__u32 skb_network_header;
	__u32 skb_protocol;
	__u32 dev_ifindex; /* offsets in struct net_device */
	__u32 dev_nd_net;
	__u32 net_inum; /* offset of ns.inum in struct net */
	__u32 not_drop; /* reasons at or below this are no drops (SKB_CONSUMED) */
	__u32 all; /* every drop, not only the endpoints' */
	__u32 host_netns; /* the loader's network namespace (its inode number), 0 unknown */
	__u32 skb_tail; /* offset in struct sk_buff: the end of its linear data, from head */
};

const volatile struct kdrop_config kcfg = {
	.snaplen = 128,
	.not_drop = 1,
};

/* The datapath's maps, reused through their pins (the loader points them there). */
#include "lib/shared_maps.h"

struct kdrop_record {
	struct event_hdr hdr;
	__u8 data[DPDBG_SNAPLEN_MAX];
};
_Static_assert((DPDBG_SNAPLEN_MAX - 14) < 16384, "the copy's length is masked below 2^14");

/* Where the record is built: too large for the stack beside the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kdrop_record);
} kdrop_scratch SEC(".maps");

/* Referenced so the enum reaches the object's BTF. */
enum dpdbg_kdrop *dpdbg_kdrop_enum __attribute__((unused));

static __always_inline void count_lost(__u8 dir, __u32 bytes)
{
	__u32 key = DPDBG_REASON_EVENT_LOST * 2 + dir;
	struct metrics_value *m = bpf_map_lookup_elem(&metrics, &key);

	if (m) {
		m->packets++;
		m->bytes += bytes;
	}
}

static __always_inline struct endpoint_info *endpoint_of(const __u8 *addr, __u8 family)
{
	struct endpoint_key k = {};

	k.family = family;
	if (family == DPDBG_FAMILY_IPV4)
		__builtin_memcpy(k.addr, addr, 4);
	else
		__builtin_memcpy(k.addr, addr, 16);
	return bpf_map_lookup_elem(&endpoints, &k);
}

SEC("raw_tracepoint/kfree_skb")
int kernel_drop(struct bpf_raw_tracepoint_args *ctx)
{
	const char *skb = (const char *)ctx->args[0];
	__u32 reason = (__u32)ctx->args[2];
	const char *head = 0, *dev = 0;
	__u16 mac = 0, nh = 0, proto = 0;
	__u32 ifindex = 0, zero = 0;
	__u8 ip[40];

	if (reason <= kcfg.not_drop)
		return 0;
	if (bpf_probe_read_kernel(&head, sizeof(head), skb + kcfg.skb_head) < 0 || !head)
		return 0;
	if (bpf_probe_read_kernel(&nh, sizeof(nh), skb + kcfg.skb_network_header) < 0 ||
	    nh == DPDBG_KDROP_NO_OFFSET)
		return 0;
	if (bpf_probe_read_kernel(ip, sizeof(ip), head + nh) < 0)
		return 0;

	__u8 version = ip[0] >> 4, family, l4;
	const __u8 *src, *dst;
	__u32 ip_len;

	if (version == 4) {
		family = DPDBG_FAMILY_IPV4;
		src = ip + 12;
		dst = ip + 16;
		l4 = ip[9];
		ip_len = ((__u32)ip[2] << 8) | ip[3];
	} else if (version == 6) {
		family = DPDBG_FAMILY_IPV6;
		src = ip + 8;
		dst = ip + 24;
		l4 = ip[6];
		ip_len = (((__u32)ip[4] << 8) | ip[5]) + 40;
	} else {
		return 0;
	}
	/* Scalars at once: the verifier refuses `to | from` on two map pointers. */
	__u32 to_ep = 0, to_id = DPDBG_IDENTITY_WORLD, from_ep = 0, from_id = DPDBG_IDENTITY_WORLD;
	__u8 hit = 0;
	struct endpoint_info *e = endpoint_of(dst, family);

	if (e) {
		to_ep = e->endpoint_id;
		to_id = e->identity;
		hit |= 1;
	}
	e = endpoint_of(src, family);
	if (e) {
		from_ep = e->endpoint_id;
		from_id = e->identity;
		hit |= 2;
	}
	if (!hit && !kcfg.all)
		return 0;

	struct kdrop_record *r = bpf_map_lookup_elem(&kdrop_scratch, &zero);

	if (!r)
		return 0;
	bpf_probe_read_kernel(&mac, sizeof(mac), skb + kcfg.skb_mac_header);
	bpf_probe_read_kernel(&proto, sizeof(proto), skb + kcfg.skb_protocol);
	__u8 flags = 0;

	if (bpf_probe_read_kernel(&dev, sizeof(dev), skb + kcfg.skb_dev) == 0 && dev) {
		const char *net = 0;
		__u32 inum = 0;

		bpf_probe_read_kernel(&ifindex, sizeof(ifindex), dev + kcfg.dev_ifindex);
		/* An ifindex means something only in its namespace: say when it is not the host's. */
		if (kcfg.host_netns && bpf_probe_read_kernel(&net, sizeof(net), dev + kcfg.dev_nd_net) == 0 && net &&
		    bpf_probe_read_kernel(&inum, sizeof(inum), net + kcfg.net_inum) == 0 && inum != kcfg.host_netns)
			flags |= DPDBG_KDROP_F_NETNS;
	}

	struct event_hdr *h = &r->hdr;

	h->timestamp_ns = bpf_ktime_get_ns();
	h->type = DPDBG_EVENT_KERNEL_DROP;
	h->subtype = reason > 254 ? DPDBG_KDROP_REASON_OTHER : reason;
	h->verdict = DPDBG_VERDICT_DROPPED;
	h->ct_state = 0;
	/* The endpoint it was for (ingress), else the one that sent it (egress). */
	h->direction = (hit & 1) ? DPDBG_DIR_INGRESS : DPDBG_DIR_EGRESS;
	h->family = family;
	h->proto = l4;
	h->flags = flags;
	h->ifindex = ifindex;
	h->endpoint_id = (hit & 1) ? to_ep : from_ep;
	h->src_identity = from_id;
	h->dst_identity = to_id;
	h->orig_len = ip_len + 14;

	/* An Ethernet header: the skb's own when it sits right before the network header. */
	if (mac != DPDBG_KDROP_NO_OFFSET && mac + 14 == nh) {
		if (bpf_probe_read_kernel(r->data, 14, head + mac) < 0)
			__builtin_memset(r->data, 0, 14);
	} else {
		__builtin_memset(r->data, 0, 12);
		__builtin_memcpy(r->data + 12, &proto, 2);
	}
	__u32 n = kcfg.snaplen, tail = 0;

	if (n > ip_len + 14)
		n = ip_len + 14;
	if (n < 14)
		n = 14;
	n -= 14;
	/*
	 * Only the skb's linear part lies at head + nh; what follows it is not
	 * the packet (a large snap length would otherwise copy kernel memory
	 * past it into the event).
	 */
	if (bpf_probe_read_kernel(&tail, sizeof(tail), skb + kcfg.skb_tail) < 0 || tail <= nh)
		tail = nh;
	if (n > tail - nh)
		n = tail - nh;
	if (n > DPDBG_SNAPLEN_MAX - 14)
		n = DPDBG_SNAPLEN_MAX - 14;
	if (n && bpf_probe_read_kernel(r->data + 14, n, head + nh) < 0)
		n = 0;
	h->cap_len = n + 14;

	__u64 size = sizeof(struct event_hdr) + n + 14;

	if (size > sizeof(*r))
		return 0;
	long err;

	if (kcfg.event_transport == DPDBG_TRANSPORT_PERF)
		err = bpf_perf_event_output(ctx, &events_perf, BPF_F_CURRENT_CPU, r, size);
	else
		err = bpf_ringbuf_output(&events, r, size, 0);
	if (err < 0)
		count_lost(h->direction, h->orig_len);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
