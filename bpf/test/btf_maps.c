// SPDX-License-Identifier: GPL-2.0-only
/*
 * Not part of the datapath: maps with known, varied BTF (enums, bitfields,
 * char arrays, nested and anonymous structs, unions, arrays, per-CPU
 * values) that the tests have bpftool create, so `dpdbg map` is checked on
 * maps it did not make.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum color { RED = 1, GREEN = 2, BLUE = 40 };

struct inner {
	__u16 a;
	__u8 b[3];
};

struct rich {
	__u32 id;
	enum color color;
	char name[8];
	__u8 small : 3, mid : 5;
	__s8 neg;
	__s64 big;
	struct inner in;
	union {
		__u32 as_u32;
		__u8 as_bytes[4];
	} u;
	struct {
		__u16 x;
		__u16 y;
	};
	__u32 arr[3];
};

/* 128-bit integers: printed by bpftool as hex strings. */
struct wide {
	__int128 s;
	unsigned __int128 u;
	__u64 tail;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct wide);
} wide_hash SEC(".maps");

struct counters {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct rich);
} rich_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct counters);
} rich_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, enum color);
} rich_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rich_ring SEC(".maps");

SEC("classifier")
int touch(struct __sk_buff *skb)
{
	__u32 k = 0;
	struct rich *r = bpf_map_lookup_elem(&rich_hash, &k);
	struct counters *c = bpf_map_lookup_elem(&rich_percpu, &k);
	enum color *col = bpf_map_lookup_elem(&rich_array, &k);

	if (r && c && col)
		bpf_ringbuf_output(&rich_ring, &k, sizeof(k), 0);
	return TC_ACT_OK;
}
