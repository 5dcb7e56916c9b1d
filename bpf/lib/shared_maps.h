/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The maps the datapath shares with the kernel-drop program (bpf/kdrop.c):
 * one definition, so the second object opens the first's pins with the
 * same key, value and size.
 */
#ifndef DPDBG_LIB_SHARED_MAPS_H
#define DPDBG_LIB_SHARED_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "../include/dpdbg.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
} endpoints SEC(".maps");

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

#endif
