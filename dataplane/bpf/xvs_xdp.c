// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * xvs steering program: sends load-balanced traffic to the AF_XDP socket of the receiving
 * queue and everything else to the kernel (XDP_PASS), so ARP, ICMP to the director, SSH and
 * unknown ports keep working untouched.
 *
 * One copy is loaded per interface, each with its own maps:
 *   external side (role MATCH_DST): TCP/UDP whose destination is a configured VIP:port;
 *   internal side (role MATCH_SRC): TCP/UDP whose source is a configured real server;
 *   (IPv4 in xvs_endpoints, IPv6 in xvs_endpoints6: steer6);
 *   a one-armed director's only interface (role MATCH_BOTH): either, the destination first
 *   (its endpoint map holds VIP:ports and real servers alike).
 * Also redirected, for the workers to translate or to drop and count:
 *   ICMP errors (destination unreachable, time exceeded, parameter problem) quoting such a
 *   packet going the other way (steer_icmp);
 *   IP fragments, first or not, to a VIP address / from a real server address, matched by
 *   address alone (steer_fragment): the workers drop them (the director does not reassemble),
 *   so a real server's non-first fragment is never forwarded un-translated by the kernel.
 * On the internal side, frames addressed to the director itself (xvs_local_addrs: its own
 * addresses, e.g. health-check replies from a real server, or ICMP errors about its own
 * connections) go to the kernel even when their source is a real server: no client
 * connection is ever addressed to the director's DIP (FullNAT's local addresses, which
 * replies are addressed to, are kept out of xvs_local_addrs). Frames for a queue with no socket fall
 * back to the kernel (bpf_redirect_map's XDP_PASS fallback).
 *
 * Fast path (xvs_flows, when the instance's settings enable it): a TCP/UDP packet of a
 * connection the workers installed is NAT-rewritten here, as dataplane/src/process.rs would
 * (address, port, TTL, RFC 1624 checksum updates, MACs; both endpoints for FullNAT; the MACs
 * alone for direct routing; an outer header, and GUE's or GRE's, for tunnels without
 * checksums: encapsulate()),
 * and redirected to the egress interface through the devmap, also when it is the arrival one
 * (XDP_TX on a veth reaches its peer only if the peer runs an XDP program; a devmap redirect
 * works wherever redirects do). Only what the workers decided is repeated: a segment with
 * SYN, FIN or RST (a state change), anything malformed, a bad IP checksum, TTL <= 1, a partial
 * TCP/UDP checksum, or a next hop without a MAC in xvs_next_hops goes to the workers as
 * before. dataplane/src/fastpath owns the maps' user-space side.
 *
 * IPv6 (xvs_flows6, xvs_next_hops6: fast_path6): a TCP/UDP packet whose transport header
 * follows the fixed header directly is rewritten as dataplane/src/process/v6.rs would (NAT66:
 * the destination of requests, the source of replies; FullNAT both; direct routing the MACs
 * alone), the TCP/UDP checksum updated over the pseudo-header (RFC 1624; a UDP result of 0
 * sent as 0xffff) and the hop limit decremented (IPv6 has no header checksum). To the workers
 * as for IPv4, and also: any extension header, a UDP checksum of 0 (invalid in IPv6), and a
 * packet longer than its egress's MTU (IPv6 routers never fragment: the workers answer it with
 * Packet Too Big). Tunnelled IPv6 flows are never installed.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MATCH_DST 0
#define MATCH_SRC 1
#define MATCH_BOTH 2

/* frag_off bits (host order: compare through bpf_htons), as in <net/ip.h>. */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* ICMP error types (RFC 792), as in <linux/icmp.h>, which pulls in libc headers. */
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* IPv6 next-header values of the extension headers walked, and ICMPv6 (RFC 8200, 4443). */
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_ICMPV6 58
#define NEXTHDR_DEST 60
/* As wire::ipv6ext::walk: a packet with more goes to the kernel here, and is dropped there. */
#define IPV6_MAX_EXT_HEADERS 8

/* ICMPv6 error types (RFC 4443): destination unreachable, packet too big, time exceeded,
 * parameter problem. Informational messages (neighbour discovery, echo) are >= 128. */
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4

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

/* IPv6 endpoints: as endpoint_key with a 16-byte address. Must match
 * xsk::program::EndpointKey6. A separate map keeps the IPv4 key (and its hash) at 8 bytes. */
struct endpoint_key6 {
	struct in6_addr addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct endpoint_key6);
	__type(value, __u8);
} xvs_endpoints6 SEC(".maps");

/* The director's own IPv6 addresses on this interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct in6_addr);
	__type(value, __u8);
} xvs_local_addrs6 SEC(".maps");

/* The director's own IPv4 addresses (network byte order) on this interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} xvs_local_addrs SEC(".maps");

/* Must match xsk::program::Settings. */
struct settings {
	__u32 role;
	/* Non-zero: look packets up in xvs_flows first. */
	__u32 fast_path;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} xvs_settings SEC(".maps");

/* ---- Fast path maps: shared by both instances (user space creates them, libbpf reuses). --- */

/* Must match fastpath::FlowKey. Addresses and ports in network byte order, as in the packet;
 * `side` is the arrival side (the instance's role): requests are keyed CIP:cport -> VIP:vport
 * on the external side, replies RIP:rport -> CIP:cport on the internal side. */
struct flow_key {
	__u32 src;
	__u32 dst;
	__u16 src_port;
	__u16 dst_port;
	__u8 proto;
	__u8 side;
	__u16 pad;
};

#define REWRITE_SOURCE 0
#define REWRITE_DESTINATION 1
#define REWRITE_NONE 2	/* direct routing */
/* Tunnels without checksums (process/xmit/tun.rs, encap.rs): the packet wrapped. */
#define REWRITE_IPIP 3
#define REWRITE_GUE 4
#define REWRITE_GRE 5
/* FullNAT: both endpoints, the source from src_addr/src_port. */
#define REWRITE_FULLNAT 6

/* Must match fastpath::FlowValue. The worker writes everything but last_seen_ns. */
struct flow_value {
	/* The new address and port of the rewritten endpoint (network byte order). */
	__u32 addr;
	__u16 port;
	__u8 rewrite;
	__u8 pad0;
	/* Where the frame leaves: interface, and the next hop there (its MAC in xvs_next_hops). */
	__u32 egress_ifindex;
	__u32 next_hop;
	/* Counter slots: service and real server ids. */
	__u32 service;
	__u32 real;
	__u8 src_mac[6];
	/* Tunnels: the egress MTU (0: unknown); a packet too big once wrapped goes to the
	 * workers, which answer it with ICMP "fragmentation needed". */
	__u16 mtu;
	/* Tunnels: the outer source address, and GUE's UDP source port; FullNAT: the new source
	 * address and port (network byte order). */
	__u32 src_addr;
	__u16 src_port;
	__u16 pad2;
	/* CLOCK_MONOTONIC (coarse) of the last packet forwarded here. */
	__u64 last_seen_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);	/* set by user space from --conn-max */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} xvs_flows SEC(".maps");

/* IPv6 flows: as flow_key and flow_value with 16-byte addresses. Must match
 * fastpath::FlowKey<Ipv6Addr> and fastpath::FlowValue<Ipv6Addr>. A map of their own keeps the
 * IPv4 key (and its hash) at 16 bytes. */
struct flow_key6 {
	struct in6_addr src;
	struct in6_addr dst;
	__u16 src_port;
	__u16 dst_port;
	__u8 proto;
	__u8 side;
	__u16 pad;
};

struct flow_value6 {
	struct in6_addr addr;
	__u16 port;
	__u8 rewrite;
	__u8 pad0;
	__u32 egress_ifindex;
	struct in6_addr next_hop;
	__u32 service;
	__u32 real;
	__u8 src_mac[6];
	/* The egress MTU (0: unknown): a longer packet goes to the workers. */
	__u16 mtu;
	/* FullNAT: the new source address and port. */
	struct in6_addr src_addr;
	__u16 src_port;
	__u16 pad2;
	__u32 pad3;
	__u64 last_seen_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);	/* set by user space from --conn-max6 */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key6);
	__type(value, struct flow_value6);
} xvs_flows6 SEC(".maps");

/* Must match fastpath::NextHopKey. */
struct next_hop_key {
	__u32 ifindex;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);	/* set by user space */
	__type(key, struct next_hop_key);
	__type(value, __u64);	/* the MAC in its first 6 bytes */
} xvs_next_hops SEC(".maps");

/* Must match fastpath::NextHopKey<Ipv6Addr>. */
struct next_hop_key6 {
	__u32 ifindex;
	struct in6_addr addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);	/* set by user space */
	__type(key, struct next_hop_key6);
	__type(value, __u64);	/* the MAC in its first 6 bytes */
} xvs_next_hops6 SEC(".maps");

/* Egress interfaces by ifindex, for bpf_redirect_map. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} xvs_egress SEC(".maps");

/* Must match fastpath::TrafficCounters: per service / real server id, per CPU. */
struct traffic {
	__u64 inpkts;
	__u64 outpkts;
	__u64 inbytes;
	__u64 outbytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);	/* set by user space: MAX_SERVICES */
	__type(key, __u32);
	__type(value, struct traffic);
} xvs_service_traffic SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);	/* set by user space: MAX_REALS */
	__type(key, __u32);
	__type(value, struct traffic);
} xvs_real_traffic SEC(".maps");

/* Per rx queue: frames redirected to the socket and frames passed to the kernel. Per CPU,
 * so counting needs no atomic operation; user space sums the CPUs. */
struct queue_counters {
	__u64 redirected;
	__u64 passed;
	/* Forwarded by the fast path (redirected to another interface or sent back out). */
	__u64 fast;
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

/* Marks steer()'s result as the fast path's action, for the counters. */
#define FAST_PATH 0x100

static __always_inline int count_fast(struct xdp_md *ctx, int action)
{
	__u32 queue = ctx->rx_queue_index;
	struct queue_counters *c = bpf_map_lookup_elem(&xvs_counters, &queue);

	if (c)
		c->fast++;
	return action;
}

/* Ones' complement helpers, as dataplane/src/checksum.rs (host byte order values). */
static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624 eqn. 3 for one 16-bit word: checksum::update_u16. */
static __always_inline __u16 csum_update16(__u16 check, __u16 old, __u16 new)
{
	return ~csum_fold((__u32)(__u16)~check + (__u16)~old + new);
}

/* Both halves of a 32-bit field at once: checksum::update_u32. */
static __always_inline __u16 csum_update32(__u16 check, __u32 old, __u32 new)
{
	return ~csum_fold((__u32)(__u16)~check + (__u16)~(old >> 16) + (__u16)~(old & 0xffff) +
			  (new >> 16) + (new & 0xffff));
}

/* Whether the IPv4 header (20 bytes, no options) checks out. */
static __always_inline int ip_checksum_ok(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += bpf_ntohs(w[i]);
	return csum_fold(sum) == 0xffff;
}

/* One packet of `len` IP bytes in the direction IPVS calls "in" (client to server) or "out". */
static __always_inline void count_traffic(struct traffic *t, int inbound, __u32 len)
{
	if (!t)
		return;
	if (inbound) {
		t->inpkts++;
		t->inbytes += len;
	} else {
		t->outpkts++;
		t->outbytes += len;
	}
}

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04

/* Wraps the frame's IPv4 packet (`ip_len` bytes after the Ethernet header, a header without
 * options) for a tunnel flow, as encap.rs does: an outer header from flow->src_addr to
 * flow->addr with the inner TOS, identification, DF and TTL, then for GUE a UDP header (source
 * flow->src_port, destination flow->port, no checksum) and `00 04 00 00`, for GRE
 * `00 00 08 00`; the new Ethernet header to `mac`. Returns 0, or -1 with the frame untouched
 * when it cannot be done here (too big for the MTU, no room), or 1 after a failure that left
 * it half changed (the caller drops it). */
static __always_inline int encapsulate(struct xdp_md *ctx, struct flow_value *flow, __u64 *mac,
				       __u16 ip_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *inner = data + sizeof(struct ethhdr), *outer;
	struct ethhdr *eth;
	__u32 overhead, sum = 0;
	__u16 *word, tos_word, id, frag, ttl_word;
	__u8 protocol;
	int i;

	switch (flow->rewrite) {
	case REWRITE_IPIP:
		overhead = 20;
		protocol = IPPROTO_IPIP;
		break;
	case REWRITE_GUE:
		overhead = 20 + 8 + 4;
		protocol = IPPROTO_UDP;
		break;
	default:
		overhead = 20 + 4;
		protocol = IPPROTO_GRE;
		break;
	}
	if (flow->mtu && ip_len + overhead > flow->mtu)
		return -1;
	if ((void *)(inner + 1) > data_end)
		return -1;
	tos_word = ((__u16 *)inner)[0];
	id = inner->id;
	frag = inner->frag_off & bpf_htons(0x4000);	/* DF */
	ttl_word = (__u16)inner->ttl << 8 | protocol;
	/* Only the IP packet goes into the tunnel, not the padding of a short frame. */
	if ((void *)inner + ip_len < data_end &&
	    bpf_xdp_adjust_tail(ctx, (int)((void *)inner + ip_len - data_end)))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)overhead))
		return 1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	outer = data + sizeof(*eth);
	if ((void *)outer + 20 + 12 > data_end)
		return 1;
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, flow->src_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	word = (__u16 *)outer;
	/* Version and IHL (4, 5: as the inner header's) and TOS; total length; id; DF; TTL and
	 * protocol; checksum; addresses. */
	word[0] = tos_word;
	word[1] = bpf_htons(ip_len + overhead);
	word[2] = id;
	word[3] = frag;
	word[4] = bpf_htons(ttl_word);
	word[5] = 0;
	outer->saddr = flow->src_addr;
	outer->daddr = flow->addr;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += word[i];
	word[5] = ~csum_fold(sum);
	if (flow->rewrite == REWRITE_GUE) {
		__u16 *udp = (void *)(outer + 1);

		udp[0] = flow->src_port;
		udp[1] = flow->port;
		udp[2] = bpf_htons(ip_len + 8 + 4);
		udp[3] = 0;
		udp[4] = bpf_htons(0x0004);	/* GUE: variant 0, no options; protocol 4 (IPv4) */
		udp[5] = 0;
	} else if (flow->rewrite == REWRITE_GRE) {
		__u16 *gre = (void *)(outer + 1);

		gre[0] = 0;
		gre[1] = bpf_htons(ETH_P_IP);
	}
	return 0;
}

/* nat::translate: sets the destination (`dst`) or source endpoint to addr:port (network byte
 * order), updating the IP checksum and the TCP/UDP one (addresses are in its pseudo-header);
 * a UDP checksum of 0 ("none") stays 0. */
static __always_inline void translate(struct iphdr *ip, __u16 *ports, __u16 *check, int dst,
				      __u32 addr, __u16 port)
{
	__u32 old_addr;
	__u16 old_port;

	if (dst) {
		old_addr = ip->daddr;
		ip->daddr = addr;
		old_port = ports[1];
		ports[1] = port;
	} else {
		old_addr = ip->saddr;
		ip->saddr = addr;
		old_port = ports[0];
		ports[0] = port;
	}
	ip->check = bpf_htons(csum_update32(bpf_ntohs(ip->check), bpf_ntohl(old_addr),
					    bpf_ntohl(addr)));
	if (ip->protocol == IPPROTO_TCP || *check != 0) {
		__u16 c = csum_update32(bpf_ntohs(*check), bpf_ntohl(old_addr), bpf_ntohl(addr));

		c = csum_update16(c, bpf_ntohs(old_port), bpf_ntohs(port));
		/* UDP: a computed 0 is sent as all ones (RFC 768). */
		if (ip->protocol == IPPROTO_UDP && c == 0)
			c = 0xffff;
		*check = bpf_htons(c);
	}
}

/* The checksum field of the TCP segment or UDP datagram (`proto`) at `l4`, of `l4_len` bytes
 * of IP payload, if the fast path may forward it; NULL for the workers: a segment with SYN,
 * FIN or RST (a state change), or malformed (a data offset below 5 or past the segment, a UDP
 * length below 8 or past the payload: the workers drop it). */
static __always_inline __u16 *transport_checksum(void *l4, __u32 l4_len, __u8 proto,
						 void *data_end)
{
	__u16 *ports = l4;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp))
			return NULL;
		if (tcp->doff < 5 || tcp->doff * 4 > l4_len)
			return NULL;
		if (((__u8 *)tcp)[13] & (TCP_SYN | TCP_FIN | TCP_RST))
			return NULL;
		return &tcp->check;
	}
	/* UDP: source port, destination port, length, checksum. */
	if ((void *)(ports + 4) > data_end || l4_len < 8)
		return NULL;
	if (bpf_ntohs(ports[2]) < 8 || bpf_ntohs(ports[2]) > l4_len)
		return NULL;
	return &ports[3];
}

/* Looks `key` up in the flow map `map` for a packet arriving on `role`'s side and returns the
 * flow or NULL; a one-armed director's interface (MATCH_BOTH) tries a request's key, then a
 * reply's. key.side is left at the side looked up last. */
#define lookup_flow(map, key, role)                                                        \
	({                                                                                 \
		typeof(bpf_map_lookup_elem(&(map), &(key))) found_;                        \
		(key).side = (role) == MATCH_BOTH ? MATCH_DST : (role);                    \
		found_ = bpf_map_lookup_elem(&(map), &(key));                              \
		if (!found_ && (role) == MATCH_BOTH) {                                     \
			(key).side = MATCH_SRC;                                            \
			found_ = bpf_map_lookup_elem(&(map), &(key));                      \
		}                                                                          \
		found_;                                                                    \
	})

/* The new MACs of a forwarded frame: the next hop's, and the egress interface's. */
static __always_inline void set_macs(struct ethhdr *eth, __u64 *mac, __u8 *src_mac)
{
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src_mac, ETH_ALEN);
}

/* The end of both families' fast paths: counts a packet of `ip_len` IP bytes for the flow's
 * service and real server, stamps the flow's last-seen time and redirects the frame to its
 * egress. */
static __always_inline int forward_fast(__u32 *service, __u32 *real, __u64 *last_seen,
					__u32 egress_ifindex, int inbound, __u32 ip_len)
{
	count_traffic(bpf_map_lookup_elem(&xvs_service_traffic, service), inbound, ip_len);
	count_traffic(bpf_map_lookup_elem(&xvs_real_traffic, real), inbound, ip_len);
	*last_seen = bpf_ktime_get_coarse_ns();
	return FAST_PATH | bpf_redirect_map(&xvs_egress, egress_ifindex, 0);
}

/* The fast path: rewrites and forwards a packet of an installed flow and returns its action,
 * or returns -1 for the workers (see the file's comment for what they keep). `l4` has been
 * checked to hold 4 bytes (the ports). */
static __always_inline int fast_path(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip,
				     void *l4, void *data_end, __u32 role)
{
	struct flow_key key = {};
	struct flow_value *flow;
	struct next_hop_key hop = {};
	__u64 *mac;
	__u16 *ports = l4, *check, ip_len, l4_len;
	__u32 pseudo;
	__u8 *ttl_proto;
	int inbound;

	/* A version other than 4 is malformed: the workers drop it. */
	if (ip->version != 4 || ip->ihl != 5 || ip->ttl <= 1)
		return -1;
	ip_len = bpf_ntohs(ip->tot_len);
	if (ip_len < sizeof(*ip) || (void *)ip + ip_len > data_end)
		return -1;
	l4_len = ip_len - sizeof(*ip);
	check = transport_checksum(l4, l4_len, ip->protocol, data_end);
	if (!check)
		return -1;
	key.src = ip->saddr;
	key.dst = ip->daddr;
	key.src_port = ports[0];
	key.dst_port = ports[1];
	key.proto = ip->protocol;
	flow = lookup_flow(xvs_flows, key, role);
	if (!flow)
		return -1;
	inbound = key.side == MATCH_DST;
	/* An egress user space took out (it stopped taking redirected frames): workers' path. */
	if (!bpf_map_lookup_elem(&xvs_egress, &flow->egress_ifindex))
		return -1;
	hop.ifindex = flow->egress_ifindex;
	hop.addr = flow->next_hop;
	mac = bpf_map_lookup_elem(&xvs_next_hops, &hop);
	if (!mac)
		return -1;
	if (!ip_checksum_ok(ip))
		return -1;
	/* A partial checksum (the folded pseudo-header sum a sender with offload leaves) must be
	 * completed over the whole segment: the workers do it (nat::has_partial_checksum). */
	pseudo = (bpf_ntohl(ip->saddr) >> 16) + (bpf_ntohl(ip->saddr) & 0xffff) +
		 (bpf_ntohl(ip->daddr) >> 16) + (bpf_ntohl(ip->daddr) & 0xffff) + ip->protocol +
		 l4_len;
	if (*check != 0 && bpf_ntohs(*check) == csum_fold(pseudo))
		return -1;

	if (flow->rewrite >= REWRITE_IPIP && flow->rewrite <= REWRITE_GRE) {
		int done = encapsulate(ctx, flow, mac, ip_len);

		if (done < 0)
			return -1;
		if (done > 0)
			return FAST_PATH | XDP_DROP;
		goto forwarded;
	}
	/* Direct routing (REWRITE_NONE) leaves the IP packet as it is: only the MACs change. */
	if (flow->rewrite != REWRITE_NONE) {
		if (flow->rewrite == REWRITE_FULLNAT) {
			translate(ip, ports, check, 0, flow->src_addr, flow->src_port);
			translate(ip, ports, check, 1, flow->addr, flow->port);
		} else {
			translate(ip, ports, check, flow->rewrite == REWRITE_DESTINATION, flow->addr,
				  flow->port);
		}
		/* nat::decrement_ttl: TTL and protocol share one 16-bit word. */
		ttl_proto = &ip->ttl;
		{
			__u16 old = (ttl_proto[0] << 8) | ttl_proto[1];

			ip->ttl--;
			ip->check = bpf_htons(csum_update16(bpf_ntohs(ip->check), old, old - 0x100));
		}
	}
	set_macs(eth, mac, flow->src_mac);

forwarded:
	return forward_fast(&flow->service, &flow->real, &flow->last_seen_ns, flow->egress_ifindex,
			    inbound, ip_len);
}

/* The ones' complement sum of an IPv6 address's eight words (host byte order). */
static __always_inline __u32 addr6_sum(const struct in6_addr *addr)
{
	const __u16 *w = (const __u16 *)addr;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 8; i++)
		sum += bpf_ntohs(w[i]);
	return sum;
}

/* nat6::translate for a TCP/UDP packet right behind its IPv6 header: sets the destination
 * (`dst`) or source endpoint to addr:port (port in network byte order), updating the TCP/UDP
 * checksum (RFC 1624 eqn. 3 over the address's eight words, then the port's; a UDP result
 * of 0 is sent as all ones). The caller has sent UDP without a checksum to the workers. */
static __always_inline void translate6(struct ipv6hdr *ip6, __u16 *ports, __u16 *check,
				       const int dst, const struct in6_addr *addr, __u16 port)
{
	__u16 *field = dst ? (__u16 *)&ip6->daddr : (__u16 *)&ip6->saddr;
	const __u16 *new = (const __u16 *)addr;
	__u32 sum = (__u16)~bpf_ntohs(*check);
	__u16 old_port, c;

#pragma unroll
	for (int i = 0; i < 8; i++) {
		sum += (__u16)~bpf_ntohs(field[i]) + bpf_ntohs(new[i]);
		field[i] = new[i];
	}
	c = ~csum_fold(sum);
	old_port = ports[dst];
	ports[dst] = port;
	c = csum_update16(c, bpf_ntohs(old_port), bpf_ntohs(port));
	if (ip6->nexthdr == IPPROTO_UDP && c == 0)
		c = 0xffff;
	*check = bpf_htons(c);
}

/* The IPv6 fast path (see the file's comment), twin of fast_path: rewrites and forwards a
 * packet of an installed flow and returns its action, or returns -1 for the workers. The
 * caller has checked that the fixed header lies in the frame and that TCP or UDP follows it
 * directly. */
static __always_inline int fast_path6(struct xdp_md *ctx, struct ethhdr *eth, struct ipv6hdr *ip6,
				      void *data_end, __u32 role)
{
	struct flow_key6 key = {};
	struct flow_value6 *flow;
	struct next_hop_key6 hop = {};
	__u16 *ports = (void *)(ip6 + 1), *check;
	__u32 l4_len, ip_len, pseudo_len, pseudo;
	__u64 *mac;
	int inbound;

	/* A version other than 6 is malformed, a hop limit <= 1 exceeded: the workers drop them. */
	if (ip6->version != 6 || ip6->hop_limit <= 1)
		return -1;
	l4_len = bpf_ntohs(ip6->payload_len);
	ip_len = sizeof(*ip6) + l4_len;
	if ((void *)ip6 + ip_len > data_end)
		return -1;
	check = transport_checksum(ports, l4_len, ip6->nexthdr, data_end);
	if (!check)
		return -1;
	/* RFC 8200 section 8.1: a UDP checksum of 0 is invalid in IPv6; the workers drop it. */
	if (ip6->nexthdr == IPPROTO_UDP && *check == 0)
		return -1;
	__builtin_memcpy(&key.src, &ip6->saddr, sizeof(key.src));
	__builtin_memcpy(&key.dst, &ip6->daddr, sizeof(key.dst));
	key.src_port = ports[0];
	key.dst_port = ports[1];
	key.proto = ip6->nexthdr;
	flow = lookup_flow(xvs_flows6, key, role);
	if (!flow)
		return -1;
	inbound = key.side == MATCH_DST;
	/* Not installed for IPv6 (the workers wrap IPv6 tunnels); never guessed at. */
	if (flow->rewrite > REWRITE_FULLNAT ||
	    (flow->rewrite >= REWRITE_IPIP && flow->rewrite <= REWRITE_GRE))
		return -1;
	if (!bpf_map_lookup_elem(&xvs_egress, &flow->egress_ifindex))
		return -1;
	hop.ifindex = flow->egress_ifindex;
	__builtin_memcpy(&hop.addr, &flow->next_hop, sizeof(hop.addr));
	mac = bpf_map_lookup_elem(&xvs_next_hops6, &hop);
	if (!mac)
		return -1;
	/* IPv6 routers never fragment: the workers answer with Packet Too Big. */
	if (flow->mtu && ip_len > flow->mtu)
		return -1;
	/* A partial checksum (nat6::has_partial_checksum: the pseudo-header's length is the
	 * segment's for TCP, the length field's for UDP) is completed by the workers. */
	pseudo_len = ip6->nexthdr == IPPROTO_UDP ? bpf_ntohs(ports[2]) : l4_len;
	pseudo = addr6_sum(&ip6->saddr) + addr6_sum(&ip6->daddr) + ip6->nexthdr + pseudo_len;
	if (*check != 0 && bpf_ntohs(*check) == csum_fold(pseudo))
		return -1;

	/* Direct routing (REWRITE_NONE) leaves the IP packet as it is: only the MACs change. */
	if (flow->rewrite == REWRITE_FULLNAT) {
		translate6(ip6, ports, check, 0, &flow->src_addr, flow->src_port);
		translate6(ip6, ports, check, 1, &flow->addr, flow->port);
	} else if (flow->rewrite == REWRITE_DESTINATION) {
		translate6(ip6, ports, check, 1, &flow->addr, flow->port);
	} else if (flow->rewrite == REWRITE_SOURCE) {
		translate6(ip6, ports, check, 0, &flow->addr, flow->port);
	}
	/* No header checksum covers the hop limit. */
	if (flow->rewrite != REWRITE_NONE)
		ip6->hop_limit--;
	set_macs(eth, mac, flow->src_mac);
	return forward_fast(&flow->service, &flow->real, &flow->last_seen_ns, flow->egress_ifindex,
			    inbound, ip_len);
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
 * of its addresses: health-check replies); on the external side the one it goes to, `dst`;
 * on a one-armed director's interface (MATCH_BOTH) `dst`, else `src` as on the internal side.
 * Addresses and ports in network byte order. */
static __always_inline int steer_endpoint(struct xdp_md *ctx, __u32 role, __u32 daddr,
					  __u32 src_addr, __u16 src_port, __u32 dst_addr,
					  __u16 dst_port, __u8 proto)
{
	struct endpoint_key key = {};

	if (role == MATCH_BOTH) {
		key.addr = dst_addr;
		key.port = dst_port;
		key.proto = proto;
		if (bpf_map_lookup_elem(&xvs_endpoints, &key))
			return bpf_redirect_map(&xvs_xsks, ctx->rx_queue_index, XDP_PASS);
	}
	if (role != MATCH_DST) {
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

/* steer_endpoint for IPv6 (xvs_endpoints6, xvs_local_addrs6). The addresses may point into
 * the packet: they are copied to the stack for the lookups. */
static __always_inline int steer_endpoint6(struct xdp_md *ctx, __u32 role,
					   const struct in6_addr *daddr,
					   const struct in6_addr *src_addr, __u16 src_port,
					   const struct in6_addr *dst_addr, __u16 dst_port, __u8 proto)
{
	struct endpoint_key6 key = {};
	struct in6_addr local;

	if (role == MATCH_BOTH) {
		__builtin_memcpy(&key.addr, dst_addr, sizeof(key.addr));
		key.port = dst_port;
		key.proto = proto;
		if (bpf_map_lookup_elem(&xvs_endpoints6, &key))
			return bpf_redirect_map(&xvs_xsks, ctx->rx_queue_index, XDP_PASS);
	}
	if (role != MATCH_DST) {
		__builtin_memcpy(&local, daddr, sizeof(local));
		if (bpf_map_lookup_elem(&xvs_local_addrs6, &local))
			return XDP_PASS;
		__builtin_memcpy(&key.addr, src_addr, sizeof(key.addr));
		key.port = src_port;
	} else {
		__builtin_memcpy(&key.addr, dst_addr, sizeof(key.addr));
		key.port = dst_port;
	}
	key.proto = proto;
	if (!bpf_map_lookup_elem(&xvs_endpoints6, &key))
		return XDP_PASS;
	return bpf_redirect_map(&xvs_xsks, ctx->rx_queue_index, XDP_PASS);
}

/* steer_icmp for ICMPv6 errors quoting a TCP/UDP packet right behind its IPv6 header (a
 * quote with extension headers goes to the kernel). Neighbour discovery and echo are
 * informational: the kernel's. */
static __always_inline int steer_icmp6(struct xdp_md *ctx, struct ipv6hdr *ip6, void *icmp_start,
				       void *data_end, __u32 role)
{
	struct icmp_header *icmp = icmp_start;
	struct ipv6hdr *inner = (void *)(icmp + 1);
	__u16 *ports;

	if ((void *)(inner + 1) > data_end)
		return XDP_PASS;
	if (icmp->type < ICMPV6_DEST_UNREACH || icmp->type > ICMPV6_PARAMPROB)
		return XDP_PASS;
	if (inner->nexthdr != IPPROTO_TCP && inner->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	ports = (void *)(inner + 1);
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	return steer_endpoint6(ctx, role, &ip6->daddr, &inner->daddr, ports[1], &inner->saddr,
			       ports[0], inner->nexthdr);
}

/* IPv6: TCP/UDP behind at most IPV6_MAX_EXT_HEADERS Hop-by-Hop, Routing and Destination
 * Options headers, steered as IPv4 is; fragments by address alone (any Fragment header: the
 * workers drop them, as IPv4 fragments); ICMPv6 errors by their quote. With `fast` set, TCP
 * and UDP right behind the fixed header are first looked up in xvs_flows6 (fast_path6). */
static __always_inline int steer6(struct xdp_md *ctx, struct ethhdr *eth, void *data_end,
				  __u32 role, __u32 fast)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	void *cursor = ip6 + 1;
	__u16 *ports;
	__u8 next;
	int action;

	if ((void *)(ip6 + 1) > data_end)
		return XDP_PASS;
	next = ip6->nexthdr;
	if (fast && (next == IPPROTO_TCP || next == IPPROTO_UDP)) {
		action = fast_path6(ctx, eth, ip6, data_end, role);
		if (action >= 0)
			return action;	/* FAST_PATH | its action */
	}
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 *ext = cursor;

		if (next == NEXTHDR_FRAGMENT)
			return steer_endpoint6(ctx, role, &ip6->daddr, &ip6->saddr, 0, &ip6->daddr,
					       0, 0);
		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST)
			break;
		if ((void *)(ext + 2) > data_end)
			return XDP_PASS;
		next = ext[0];
		cursor = ext + (ext[1] + 1) * 8;
	}
	if (next == NEXTHDR_ICMPV6)
		return steer_icmp6(ctx, ip6, cursor, data_end, role);
	if (next != IPPROTO_TCP && next != IPPROTO_UDP)
		return XDP_PASS;
	ports = cursor;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	return steer_endpoint6(ctx, role, &ip6->daddr, &ip6->saddr, ports[0], &ip6->daddr,
			       ports[1], next);
}

static __always_inline int steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 zero = 0, role;
	struct settings *settings;
	__u16 *ports, sport, dport;
	__u32 ihl, daddr, saddr;
	__u8 protocol;
	int action;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	settings = bpf_map_lookup_elem(&xvs_settings, &zero);
	if (!settings)
		return XDP_PASS;
	role = settings->role;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return steer6(ctx, eth, data_end, role, settings->fast_path);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return steer_fragment(ctx, ip, role);
	if (ip->protocol == IPPROTO_ICMP)
		return steer_icmp(ctx, ip, data_end, role);
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return XDP_PASS;
	ports = (void *)ip + ihl;
	if ((void *)(ports + 2) > data_end)
		return XDP_PASS;
	/* Read before the fast path: a tunnel's encapsulation moves the packet, and the verifier
	 * forgets every packet pointer after such a helper, even where the fast path declined. */
	daddr = ip->daddr;
	saddr = ip->saddr;
	sport = ports[0];
	dport = ports[1];
	protocol = ip->protocol;
	if (settings->fast_path) {
		action = fast_path(ctx, eth, ip, ports, data_end, role);
		if (action >= 0)
			return action;	/* FAST_PATH | its action */
	}
	return steer_endpoint(ctx, role, daddr, saddr, sport, daddr, dport, protocol);
}

SEC("xdp")
int xvs_steer(struct xdp_md *ctx)
{
	int action = steer(ctx);

	if (action & FAST_PATH)
		return count_fast(ctx, action & ~FAST_PATH);
	return count(ctx, action);
}

char _license[] SEC("license") = "Dual BSD/GPL";
