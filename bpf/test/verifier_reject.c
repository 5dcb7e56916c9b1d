// SPDX-License-Identifier: GPL-2.0-only
/*
 * Not part of the datapath: an object the verifier must refuse (it reads
 * packet memory without a bounds check), so tests can see that dpdbg
 * reports a rejection with the verifier's own words.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "../include/dpdbg.h"

char LICENSE[] SEC("license") = "GPL";

/* The globals and the clock probe the loader expects of a datapath object. */
const volatile struct dp_config cfg;
volatile struct dp_runtime rt = { .aggregation = DPDBG_AGG_MEDIUM };
SEC(".data") volatile struct dp_clock clk;
struct clock_sample clock_sample;

SEC("classifier")
int clock_probe(struct __sk_buff *skb)
{
	clock_sample.jiffies = bpf_jiffies64();
	clock_sample.coarse_ns = bpf_ktime_get_coarse_ns();
	return TC_ACT_OK;
}

SEC("classifier")
int from_endpoint(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;

	return data[20] == 1 ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("classifier")
int to_endpoint(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
