// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xvs steering program: sends load-balanced traffic to the AF_XDP socket of the receiving
 * queue and everything else to the kernel (XDP_PASS), so ARP, ICMP to the director, SSH and
 * unknown ports keep working untouched.
 *
 * One copy is loaded per interface, each with its own maps:
 *   external side (role MATCH_DST): IPv4 TCP/UDP whose destination is a configured VIP:port;
 *   internal side (role MATCH_SRC): IPv4 TCP/UDP whose source is a configured real server.
 * Also redirected, for the workers to translate or to drop and count:
 *   ICMP errors (destination unreachable, time exceeded, parameter problem) quoting such a
 *   packet going the other way (steer_icmp);
 *   IP fragments, first or not, to a VIP address / from a real server address, matched by
 *   address alone (steer_fragment): the workers drop them (the director does not reassemble),
 *   so a real server's non-first fragment is never forwarded un-translated by the kernel.
 * On the internal side, frames addressed to the director itself (xvs_local_addrs: its own
 * addresses, e.g. health-check replies from a real server, or ICMP errors about its own
 * connections) go to the kernel even when their source is a real server: no client
 * connection is ever addressed to the director's DIP. Frames for a queue with no socket fall
 * back to the kernel (bpf_redirect_map's XDP_PASS fallback).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MATCH_DST 0
#define MATCH_SRC 1

/* frag_off bits (host order: compare through bpf_htons), as in <net/ip.h>. */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* ICMP error types (RFC 792), as in <linux/icmp.h>, which pulls in libc headers. */
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* The ICMP header; an error's quote follows it. */
struct icmp_header {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest;
};

/* Network byte order, as in the packet. Must match xsk::program::EndpointKey. An address
 * alone (for fragments) is keyed with port 0 and proto 0. */
struct endpoint_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xvs_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct endpoint_key);
	__type(value, __u8);
} xvs_endpoints SEC(".maps");

/* The director's own IPv4 addresses (network byte order) on this interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} xvs_local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xvs_role SEC(".maps");

/* Per rx queue: frames redirected to the socket and frames passed to the kernel. Per CPU,
 * so counting needs no atomic operation; user space sums the CPUs. */
struct queue_counters {
	__u64 redirected;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct queue_counters);
} xvs_counters SEC(".maps");

static __always_inline int count(struct xdp_md *ctx, int action)
{
	__u32 queue = ctx->rx_queue_index;
	struct queue_counters *c = bpf_map_lookup_elem(&xvs_counters, &queue);

	if (c) {
		if (action == XDP_REDIRECT)
			c->redirected++;
		else
			c->passed++;
	}
	return action;
}

/* Redirects the frame to the socket of its queue if `key` is steered; else to the kernel. */
static __always_inline int redirect_if(struct xdp_md *ctx, struct endpoint_key *key)
{
	if (!bpf_map_lookup_elem(&xvs_endpoints, key))
		return XDP_PASS;
	return bpf_redirect_map(&xvs_xsks, ctx->rx_queue_index, XDP_PASS);
}

/* Steers the frame by the endpoint its side matches: on the internal side (MATCH_SRC) the one
 * it comes from, `src`, unless the frame is addressed to the director itself (`daddr` is one
 * of its addresses: health-check replies); on the external side the one it goes to, `dst`.
 * Addresses and ports in network byte order. */
static __always_inline int steer_endpoint(struct xdp_md *ctx, __u32 role, __u32 daddr,
					  __u32 src_addr, __u16 src_port, __u32 dst_addr,
					  __u16 dst_port, __u8 proto)
{
	struct endpoint_key key = {};

	if (role == MATCH_SRC) {
		if (bpf_map_lookup_elem(&xvs_local_addrs, &daddr))
			return XDP_PASS;
		key.addr = src_addr;
		key.port = src_port;
	} else {
		key.addr = dst_addr;
		key.port = dst_port;
	}
	key.proto = proto;
	return redirect_if(ctx, &key);
}

/* Fragments, first or not, of traffic to a VIP (external side) or from a real server
 * (internal side, unless addressed to the director itself): matched by address alone, since a
 * non-first fragment has no ports, against the address-only keys (port 0, proto 0). */
static __always_inline int steer_fragment(struct xdp_md *ctx, struct iphdr *ip, __u32 role)
{
	return steer_endpoint(ctx, role, ip->daddr, ip->saddr, 0, ip->daddr, 0, 0);
}

/* ICMP errors about load-balanced traffic, matched by the packet they quote (an IPv4 header
 * without options and the first 8 bytes of TCP/UDP): on the external side its source is the
 * VIP:port (one of our replies), on the internal side its destination is the real server
 * (a request we forwarded). Errors to the director's own addresses, informational messages
 * (echo...) and anything that does not quote a steered endpoint go to the kernel. */
static __always_inline int steer_icmp(struct xdp_md *ctx, struct iphdr *ip, void *data_end,
				      __u32 role)
{
	struct icmp_header *icmp;
	struct iphdr *inner;
	__u16 *ports;
	__u32 ihl = ip->ihl * 4;

	if (ihl < sizeof(*ip))
		return XDP_PASS;
	icmp = (void *)ip + ihl;
	inner = (void *)(icmp + 1);
	if ((void *)(inner + 1) > data_end)
		return XDP_PASS;
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED &&
	    icmp->type != ICMP_PARAMETERPROB)
		return XDP_PASS;
	if (inner->version != 4 || inner->ihl != 5)
		return XDP_PASS;
	if (inner->protocol != IPPROTO_TCP && inner->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (inner->frag_off & bpf_htons(IP_OFFSET))
		return XDP_PASS;
	ports = (void *)(inner + 1);
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	/* The quoted packet travelled the other way: its destination is where the error comes
	 * from. */
	return steer_endpoint(ctx, role, ip->daddr, inner->daddr, ports[1], inner->saddr, ports[0],
			      inner->protocol);
}

static __always_inline int steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 zero = 0, *role;
	__u16 *ports;
	__u32 ihl;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	role = bpf_map_lookup_elem(&xvs_role, &zero);
	if (!role)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return steer_fragment(ctx, ip, *role);
	if (ip->protocol == IPPROTO_ICMP)
		return steer_icmp(ctx, ip, data_end, *role);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return XDP_PASS;
	ports = (void *)ip + ihl;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;

	return steer_endpoint(ctx, *role, ip->daddr, ip->saddr, ports[0], ip->daddr, ports[1],
			      ip->protocol);
}

SEC("xdp")
int xvs_steer(struct xdp_md *ctx)
{
	return count(ctx, steer(ctx));
}

char _license[] SEC("license") = "Dual BSD/GPL";
