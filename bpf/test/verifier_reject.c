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

const volatile struct dp_config cfg;

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
