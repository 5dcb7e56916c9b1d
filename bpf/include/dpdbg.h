/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of dpdbg's datapath: every struct and constant that
 * crosses the boundary between bpf/datapath.c and the Rust core lives here.
 * The Rust mirrors in src/abi/ are checked against the BTF of the compiled
 * object by tests/abi_layout.rs, so a change here that is not mirrored fails
 * the build's tests rather than corrupting maps at run time.
 */
#ifndef DPDBG_ABI_H
#define DPDBG_ABI_H

/*
 * Constants are enums, not #defines: enums are kept in the object's BTF, so
 * tests/abi_layout.rs compares every one with its Rust mirror.
 */

#include <linux/types.h>

/* Address families as they appear in keys (not AF_*: one byte, stable). */
enum dpdbg_family {
	DPDBG_FAMILY_IPV4 = 4,
	DPDBG_FAMILY_IPV6 = 6,
};

/* Direction, from the endpoint's point of view (cilium's meaning). */
enum dpdbg_dir {
	DPDBG_DIR_INGRESS = 0, /* towards the endpoint: tc egress of the host veth */
	DPDBG_DIR_EGRESS = 1, /* from the endpoint: tc ingress of the host veth */
};

/* Reserved identities. 0 is never a real identity: in policy keys it means "any". */
enum dpdbg_identity {
	DPDBG_IDENTITY_ANY = 0,
	DPDBG_IDENTITY_HOST = 1,
	DPDBG_IDENTITY_WORLD = 2,
};

/* endpoint.flags */
enum dpdbg_ep_flag {
	DPDBG_EP_ENFORCE_INGRESS = 0x1,
	DPDBG_EP_ENFORCE_EGRESS = 0x2,
};

/* endpoints: IP address -> endpoint. IPv4 addresses use addr[0..4]. */
struct endpoint_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

struct endpoint_info {
	__u32 endpoint_id;
	__u32 identity;
	__u32 ifindex;
	__u8 mac[6];
	__u16 flags;
};

/*
 * ipcache: LPM trie. prefixlen counts the family and pad bytes too
 * (32 bits), so a /24 IPv4 CIDR is stored with prefixlen 56; the family
 * byte thereby keeps IPv4 and IPv6 prefixes apart in one trie.
 */
struct ipcache_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u32 flags;
};

/* policy: identity 0 = any peer; dport 0 with proto 0 = any port and protocol. */
struct policy_key {
	__u32 endpoint_id;
	__u32 identity;
	__u16 dport; /* host byte order */
	__u8 proto;
	__u8 direction;
};

enum dpdbg_policy_action {
	DPDBG_POLICY_ALLOW = 0,
	DPDBG_POLICY_DENY = 1,
};

struct policy_value {
	__u8 action;
	__u8 pad[7];
	__u64 packets;
	__u64 bytes;
};

/* Which policy lookup matched (policy verdict events, hubble's match kinds). */
enum dpdbg_match {
	DPDBG_MATCH_NONE = 0,
	DPDBG_MATCH_L3_L4 = 1,
	DPDBG_MATCH_L3_ONLY = 2,
	DPDBG_MATCH_L4_ONLY = 3,
	DPDBG_MATCH_ALL = 4,
};

/*
 * Conntrack keys are stored in the orientation of the packet that opened the
 * connection, ports in host byte order. ICMP echo uses the identifier as the
 * source port of requests and the destination port of replies, so a reply's
 * reversed tuple finds its request's entry. direction keeps the egress entry
 * of one endpoint apart from the ingress entry of its peer on the same node.
 */
struct ct4_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 direction;
	__u16 pad;
};

struct ct6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 direction;
	__u16 pad;
};

/* ct_entry.flags */
enum dpdbg_ct_flag {
	DPDBG_CT_F_SEEN_NON_SYN = 0x01,
	DPDBG_CT_F_CLOSING_FWD = 0x02,
	DPDBG_CT_F_CLOSING_REV = 0x04,
	DPDBG_CT_F_REPLY_SEEN = 0x08,
	/*
	 * The reversed tuple has an entry of its own too (set on both when the
	 * second is made): a reply must then look up its own tuple first.
	 */
	DPDBG_CT_F_TWIN = 0x10,
};

/* Lifetimes in seconds after last_seen_ns. */
enum dpdbg_ct_lifetime {
	DPDBG_CT_LIFETIME_TCP_SYN = 60,
	DPDBG_CT_LIFETIME_TCP = 21600,
	DPDBG_CT_LIFETIME_CLOSE = 10,
	DPDBG_CT_LIFETIME_NONTCP = 60,
};

/*
 * Times are CLOCK_MONOTONIC_COARSE nanoseconds. What every tracked packet
 * reads (last seen, lifetime, interface, flags) comes first, what it only
 * adds to next, so the established path touches as few bytes as it can.
 */
struct ct_entry {
	__u64 last_seen_ns;
	__u32 lifetime_s;
	/*
	 * The interface of the endpoint the entry belongs to, checked by the
	 * packet that opened it (the endpoint owns the address on this
	 * interface). A tracked packet on the same interface skips the
	 * endpoint lookup; on any other it takes the full path.
	 */
	__u32 ifindex;
	__u8 tcp_flags_fwd;
	__u8 tcp_flags_rev;
	__u8 flags;
	__u8 pad;
	__u32 src_identity;
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u64 created_ns;
};

/*
 * CT state carried by events. RELATED: an ICMP error quoting a tracked
 * connection. REOPENED: a SYN on a closing or closed entry, which starts a
 * new connection (policy is looked up again, as for NEW).
 */
enum dpdbg_ct_state {
	DPDBG_CT_NEW = 1,
	DPDBG_CT_ESTABLISHED = 2,
	DPDBG_CT_REPLY = 3,
	DPDBG_CT_RELATED = 4,
	DPDBG_CT_REOPENED = 5,
};

/*
 * IPv4 and IPv6 fragments: the first fragment of a datagram records its
 * ports here, so later fragments (which carry no L4 header) find the same
 * conntrack entry and get the same verdict.
 */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct frag_ports {
	__u16 sport;
	__u16 dport;
};

/*
 * Names, for people (not read by the programs): the labels of an identity
 * and the namespace/pod of an endpoint, kept beside the maps so every
 * command, serve and --server see the same, and gone with an unload.
 * Strings are NUL-terminated; labels are "key=value" joined by ','
 * (Kubernetes keys and values hold neither ',' nor '=' after the key).
 */
enum dpdbg_names {
	DPDBG_LABELS_LEN = 256,
	DPDBG_NAMESPACE_LEN = 64,
	DPDBG_POD_LEN = 256,
};

/* identities: identity -> its labels. */
struct identity_labels {
	char labels[DPDBG_LABELS_LEN];
};

/* endpoint_names: endpoint id -> namespace and pod. */
struct endpoint_name {
	char namespace[DPDBG_NAMESPACE_LEN];
	char pod[DPDBG_POD_LEN];
};

/*
 * Reasons, the metrics key and the drop event's subtype. Numbers below 240
 * are cilium's drop reasons for the same cause; 240 and up are dpdbg's own.
 */
enum dpdbg_reason {
	DPDBG_REASON_FORWARDED = 0,
	DPDBG_REASON_INVALID_SOURCE_IP = 132,
	DPDBG_REASON_POLICY_DENIED = 133,
	DPDBG_REASON_INVALID_PACKET = 134,
	DPDBG_REASON_CT_TRUNCATED = 135,
	DPDBG_REASON_UNROUTABLE = 151,
	DPDBG_REASON_CT_MAP_INSERT = 155,
	DPDBG_REASON_INVALID_EXTHDR = 156, /* IPv6 extension-header chain we cannot finish */
	DPDBG_REASON_FRAG_NOT_FOUND = 175, /* a later fragment whose first we have not seen */
	DPDBG_REASON_POLICY_DENYLIST = 181,
	DPDBG_REASON_PASS_OTHER_L3 = 240, /* not IPv4/IPv6 (ARP, ...): passed */
	DPDBG_REASON_EVENT_LOST = 242, /* event not written: buffer full */
	DPDBG_REASON_EVENT_UNDECODABLE = 243, /* counted by readers: an event record that did not decode */
};

/* metrics is a per-CPU array indexed by reason * 2 + direction. */
enum dpdbg_metrics {
	DPDBG_METRICS_MAX = (256 * 2),
};

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* Event types, hubble's CiliumEventType numbers. */
enum dpdbg_event_type {
	DPDBG_EVENT_DROP = 1,
	DPDBG_EVENT_TRACE = 4,
	DPDBG_EVENT_POLICY_VERDICT = 5,
};

/* Trace observation points (event subtype), cilium's numbers. */
enum dpdbg_trace_point {
	DPDBG_TRACE_TO_ENDPOINT = 0,
	DPDBG_TRACE_FROM_ENDPOINT = 5,
};

/* Verdicts, hubble's numbers. */
enum dpdbg_verdict {
	DPDBG_VERDICT_FORWARDED = 1,
	DPDBG_VERDICT_DROPPED = 2,
};

/* event_hdr.flags */
enum dpdbg_event_flag {
	DPDBG_EVF_DENY_OVERRODE_ALLOW = 0x01, /* verdict: a deny won over a matching allow */
	DPDBG_EVF_FRAGMENT = 0x02, /* the packet is a fragment of a datagram */
};

/*
 * Snap lengths up to DPDBG_SNAPLEN_INLINE are written straight into a
 * fixed-size ring record (struct event_record, reserved without a copy);
 * larger ones, up to a jumbo frame, are built in a per-CPU scratch and
 * written at their exact length. Readers take whatever cap_len a record
 * carries: a record is its header and cap_len bytes, padding allowed.
 */
enum dpdbg_snaplen {
	DPDBG_SNAPLEN_INLINE = 256, /* a power of two: the datapath masks with it */
	DPDBG_SNAPLEN_MAX = 9216, /* the largest jumbo frame */
};

/*
 * Every event starts with this header, followed by cap_len bytes of the
 * packet. subtype: drop reason, trace observation point, or the policy
 * match kind. Timestamps are CLOCK_MONOTONIC nanoseconds.
 */
struct event_hdr {
	__u64 timestamp_ns;
	__u8 type;
	__u8 subtype;
	__u8 verdict;
	__u8 ct_state;
	__u8 direction;
	__u8 family;
	__u8 proto;
	__u8 flags;
	__u32 ifindex;
	__u32 endpoint_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 orig_len;
	__u32 cap_len;
};

/* Event transports. */
enum dpdbg_transport {
	DPDBG_TRANSPORT_RINGBUF = 0,
	DPDBG_TRANSPORT_PERF = 1,
};

/* Aggregation levels for trace events. */
enum dpdbg_aggregation {
	DPDBG_AGG_NONE = 0, /* a trace event for every forwarded packet */
	DPDBG_AGG_MEDIUM = 1, /* new connections and changes of TCP flags */
	DPDBG_AGG_MAX = 2, /* no trace events; drops and verdicts only */
};

/*
 * Load-time settings: one const volatile global, set by the loader. The
 * verifier sees them as constants and prunes what they switch off.
 */
struct dp_config {
	__u32 event_transport;
	__u32 snaplen;
};

/*
 * Run-time settings: one global in .data, pinned as maps/settings, so an
 * operator can change them on a loaded datapath (`dpdbg datapath config`).
 */
struct dp_runtime {
	__u32 aggregation;
	__u32 debug;
};

/*
 * The datapath's clock: jiffies, which the verifier inlines into one load,
 * scaled to CLOCK_MONOTONIC_COARSE nanoseconds. bpf_ktime_get_coarse_ns()
 * is a helper call that costs more than a hash lookup here. The loader
 * measures both clocks once through the clock_probe program and fills this
 * in; until then (ns_per_jiffy 0) the datapath reads the coarse clock.
 */
struct dp_clock {
	__u64 ns_per_jiffy;
	__s64 offset_ns; /* coarse ns = jiffies * ns_per_jiffy + offset_ns */
};

/* What clock_probe writes: one reading of each clock, back to back. */
struct clock_sample {
	__u64 jiffies;
	__u64 coarse_ns;
};

/*
 * `dpdbg trace`: the datapath's handler compiled a second time as a dry-run
 * program pair (trace_from_ep, trace_to_ep). Where the live programs write
 * to a map, count or send an event, the dry ones record what they would have
 * done in the one slot of the trace_result map instead.
 */

/* trace_result.ct_lookup[]: what one conntrack lookup found. */
enum dpdbg_trace_ct {
	DPDBG_TRACE_CT_SKIPPED = 0, /* not looked up */
	DPDBG_TRACE_CT_ABSENT = 1,
	DPDBG_TRACE_CT_FOUND = 2,
	DPDBG_TRACE_CT_OTHER_IF = 3, /* an entry of another interface: not used */
	DPDBG_TRACE_CT_EXPIRED = 4, /* past its lifetime: the datapath deletes it */
	DPDBG_TRACE_CT_CLOSED = 5, /* closing and met by a new SYN: the datapath deletes it */
};

/* The slots of trace_result.ct_lookup, in the order the handler looks. */
enum dpdbg_trace_ct_slot {
	DPDBG_TRACE_CT_RELATED_FWD = 0, /* the connection an ICMP error quotes */
	DPDBG_TRACE_CT_RELATED_REV = 1,
	DPDBG_TRACE_CT_FWD = 2, /* the packet's own tuple */
	DPDBG_TRACE_CT_REV = 3, /* its reply tuple */
	DPDBG_TRACE_CT_SLOTS = 4,
};

/* trace_result.ep_state: the endpoint lookup. */
enum dpdbg_trace_ep {
	DPDBG_TRACE_EP_SKIPPED = 0, /* a tracked packet: its entry vouches for the endpoint */
	DPDBG_TRACE_EP_FOUND = 1,
	DPDBG_TRACE_EP_ABSENT = 2,
	DPDBG_TRACE_EP_OTHER_IF = 3, /* the address belongs to an endpoint on another interface */
};

/* trace_result.peer_source: where the peer's identity came from. */
enum dpdbg_trace_peer {
	DPDBG_TRACE_PEER_NONE = 0, /* not looked up */
	DPDBG_TRACE_PEER_ENDPOINT = 1,
	DPDBG_TRACE_PEER_IPCACHE = 2,
	DPDBG_TRACE_PEER_WORLD = 3, /* in neither: reserved identity world */
};

/* trace_result.policy[]: one policy level's lookup (index: enum dpdbg_match - 1). */
enum dpdbg_trace_policy {
	DPDBG_TRACE_POLICY_SKIPPED = 0,
	DPDBG_TRACE_POLICY_ABSENT = 1,
	DPDBG_TRACE_POLICY_ALLOW = 2,
	DPDBG_TRACE_POLICY_DENY = 3,
};

/* trace_result.ct_create */
enum dpdbg_trace_create {
	DPDBG_TRACE_CREATE_NONE = 0,
	DPDBG_TRACE_CREATE_NEW = 1, /* a new entry */
	DPDBG_TRACE_CREATE_REPLACE = 2, /* overwriting another interface's entry */
};

enum dpdbg_trace_limits {
	DPDBG_TRACE_EVENTS_MAX = 2, /* a policy verdict and a drop at most */
	DPDBG_TRACE_POLICY_LEVELS = 4,
};

struct trace_result {
	struct event_hdr events[DPDBG_TRACE_EVENTS_MAX]; /* what would have been sent, in order */
	struct ct_entry ct; /* the entry the packet would be accounted to, as found */
	struct endpoint_info ep; /* the endpoint found (ep_state FOUND or OTHER_IF) */
	struct policy_key policy_keys[DPDBG_TRACE_POLICY_LEVELS]; /* each level's key, as looked up */
	__u32 ifindex; /* the interface the program ran for */
	__u32 peer_identity;
	__u16 sport; /* the ports conntrack and policy use (host order) */
	__u16 dport;
	__u8 parse; /* 0, or the reason the parser stopped with */
	__u8 family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 frag; /* 0 none, 1 first fragment, 2 later, 3 later with no first seen */
	__u8 icmp_err; /* an ICMP error with a quoted connection */
	__u8 neigh; /* ICMPv6 neighbour discovery or MLD: passed untracked */
	__u8 ct_state; /* the state the packet got (enum dpdbg_ct_state), 0 none */
	__u8 ct_lookup[DPDBG_TRACE_CT_SLOTS];
	__u8 policy[DPDBG_TRACE_POLICY_LEVELS];
	__u8 ep_state;
	__u8 enforced; /* the endpoint enforces policy in this direction */
	__u8 peer_source;
	__u8 ct_create;
	__u8 policy_match; /* the deciding level (enum dpdbg_match) */
	__u8 policy_overrode; /* a deny won over a matching allow */
	__u8 reason; /* what the packet was counted as: 0 forwarded, or a drop reason */
	__u8 nevents;
};

/* Every enum above, so they all reach the object's BTF (see lib/maps.h). */
struct dpdbg_abi_enums {
	enum dpdbg_family family;
	enum dpdbg_dir dir;
	enum dpdbg_identity identity;
	enum dpdbg_ep_flag ep_flag;
	enum dpdbg_policy_action policy_action;
	enum dpdbg_match match;
	enum dpdbg_ct_flag ct_flag;
	enum dpdbg_ct_lifetime ct_lifetime;
	enum dpdbg_ct_state ct_state;
	enum dpdbg_reason reason;
	enum dpdbg_metrics metrics;
	enum dpdbg_event_type event_type;
	enum dpdbg_trace_point trace_point;
	enum dpdbg_verdict verdict;
	enum dpdbg_event_flag event_flag;
	enum dpdbg_snaplen snaplen;
	enum dpdbg_transport transport;
	enum dpdbg_aggregation aggregation;
	enum dpdbg_trace_ct trace_ct;
	enum dpdbg_trace_ct_slot trace_ct_slot;
	enum dpdbg_trace_ep trace_ep;
	enum dpdbg_trace_peer trace_peer;
	enum dpdbg_trace_policy trace_policy;
	enum dpdbg_trace_create trace_create;
	enum dpdbg_trace_limits trace_limits;
	enum dpdbg_names names;
};

#endif
