/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The datapath's state: its settings (globals the loader fills in) and every
 * map it reads or writes. The structs are the ABI in include/dpdbg.h.
 */
#ifndef DPDBG_LIB_MAPS_H
#define DPDBG_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../include/dpdbg.h"
#include "shared_maps.h"

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

/* Names, for people: read and written by dpdbg, never by the programs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct identity_labels);
} identities SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct endpoint_name);
} endpoint_names SEC(".maps");



/* One slot the dry-run programs of `dpdbg trace` write their record to. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct trace_result);
} trace_result SEC(".maps");


/*
 * Referenced so the ABI test finds every enum in the object's BTF even
 * though no map or global is declared with them.
 */
struct dpdbg_abi_enums *dpdbg_abi_enums __attribute__((unused));

#endif
