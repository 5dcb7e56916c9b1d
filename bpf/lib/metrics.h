/* SPDX-License-Identifier: GPL-2.0-only */
/* The metrics map: packets and bytes by reason and direction. */
#ifndef DPDBG_LIB_METRICS_H
#define DPDBG_LIB_METRICS_H

#include "maps.h"

static __always_inline void count(__u32 reason, __u8 dir, __u32 len)
{
	__u32 idx = reason * 2 + dir;
	struct metrics_value *m = bpf_map_lookup_elem(&metrics, &idx);

	/* Per-CPU slot: plain adds are race free. */
	if (m) {
		m->packets++;
		m->bytes += len;
	}
}

/*
 * The side effects of a packet's fate. `tr` is NULL in the live programs
 * (a constant: the compiler removes every branch on it) and the trace
 * slot in the dry-run ones, which record instead of acting.
 */
static __always_inline void account(struct trace_result *tr, __u32 reason, __u8 dir, __u32 len)
{
	if (tr)
		tr->reason = reason;
	else
		count(reason, dir, len);
}

#endif
