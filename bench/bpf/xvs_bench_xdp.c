// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The benchmark's XDP generator and sink (`xvs-bench --generator xdp`).
 *
 * xvs_bench_gen runs under BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES, as xdp-tools'
 * xdp-trafficgen does: the kernel hands it a page-pool frame initialised from the template
 * (flow 0's UDP frame, IPv4 or IPv6), it makes frame `n` into flow `n % flows` and redirects it to the
 * generator's veth, which puts the xdp_frame on the director's receive ring as a NIC's DMA
 * would: no skb, and XDP's full headroom (an AF_PACKET frame has ~30 bytes, so veth copies it
 * into a fresh page before XDP may see it, a cost no NIC driver has). Pages are recycled
 * with whatever the last run and the receivers wrote (a NAT rewrote addresses, ports, TTL and
 * MACs in place), so every run first copies the template's headers back from the
 * configuration, then makes them flow `n`'s with checksums derived from the template's
 * (RFC 1624).
 * TCP conversations (SYN, data, FIN, last ACK: frames that differ in more than addresses)
 * come from a ring of prebuilt frames instead: ring position `p` is entry `p % ring_len`,
 * copied whole from xvs_gen_ring; an entry marked RING_SKIP_FIRST_PASS is passed over, unsent,
 * on the ring's first pass (a staggered conversation's segments before its SYN). Pacing is done here, per frame: one BPF_PROG_RUN call runs for the whole trial (each call
 * costs two RCU grace periods, milliseconds, to enter and leave the XDP dispatcher), and a run
 * whose frame is not due yet drops it (a recycled page, tens of nanoseconds). A generator
 * that fell behind (preempted) sends at most MAX_DEBT frames at once and forgets the rest.
 *
 * xvs_bench_sink, attached to the switch's port of the director's internal veth, counts the
 * generator's datagrams (UDP to the bench port from the generator's sources, payload starting
 * with the magic, IP and UDP checksums verified) and drops them there, so that counting costs a
 * few dozen nanoseconds instead of a trip through a bridge and a real server's UDP stack;
 * anything else (ARP, neighbour discovery, latency probes, the other family) passes to the
 * kernel. With `tcp` set it answers TCP conversations instead (answer_tcp). It handles the
 * family of its configuration: IPv4 without options, or IPv6 without extension headers, as
 * the generator sends them.
 *
 * xvs_bench_decap stands in for a real server's tunnel decapsulation in the tunnelling tests,
 * on machines whose kernel has no ipip, fou or gre: an IPv4 packet in IPv4 (ipip), in GUE
 * (UDP to xvs_sink_config's port, variant 0, no options, protocol 4) or in GRE (IPv4, with or
 * without checksum) loses its outer headers and goes on to the stack, as tunl0, a GUE fou port
 * or gre0 would hand it; it is counted in xvs_sink_counters. Everything else passes as it is.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_DESTINATIONS 256
/* Most frames a late generator sends back to back to catch up. */
#define MAX_DEBT 64
/* Longest UDP datagram the sink verifies (a 1518-byte frame carries 1472 + 8). */
#define MAX_UDP_LEN 1480
#define MAGIC 0x42535658 /* "XVSB" read as a little-endian u32 */
/* Ethernet, IPv4 or IPv6, UDP, the magic and the flow number: what the generator writes. */
#define HEADER4_LEN 50
#define HEADER6_LEN 70
/* The template's room: the longer of the two. */
#define HEADER_LEN HEADER6_LEN
/* Longest frame of the ring (without FCS); the template is this long, shorter frames are
 * trimmed with bpf_xdp_adjust_tail. */
#define RING_FRAME_MAX 128
/* In struct ring_frame's len: not sent on the ring's first pass. */
#define RING_SKIP_FIRST_PASS 0x80000000u

/* Must match bench/src/agent/xdp.rs's GenConfig. Addresses and ports in network order. */
struct gen_config {
	__u64 start_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of frame 0 */
	__u64 end_ns; /* no frame leaves from then on */
	__u64 interval_ns; /* between frames; 0 = as fast as possible */
	__u32 ifindex;
	__u32 flows;
	__u32 src_count;
	__u32 dst_count;
	/* host order: the last 32 bits of flow i's source (all of an IPv4 one) are
	 * src_base + i % src_count */
	__u32 src_base;
	__u16 sport_base; /* host order: flow i's port is sport_base + i / src_count */
	__u16 family; /* 4 or 6: the template's */
	/* flow i goes to dst[i % dst_count]: network order, an IPv4 address in word 0 */
	__u32 dst[MAX_DESTINATIONS][4];
	__u8 header[HEADER_LEN]; /* flow 0's (HEADER4_LEN or HEADER6_LEN bytes), checksums included */
	__u32 ring_len; /* 0: UDP flows from the header; else frames from xvs_gen_ring */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} xvs_gen_config SEC(".maps");

/* Must match bench/src/agent/xdp.rs's RingFrame. */
struct ring_frame {
	__u32 len;
	__u8 data[RING_FRAME_MAX];
};

/* Sized by user space before loading (one entry per frame of the ring). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ring_frame);
} xvs_gen_ring SEC(".maps");

/* Must match bench/src/agent/xdp.rs's GenProgress. One generator thread per instance. */
struct gen_progress {
	__u64 sent; /* frames redirected; the next one is flow sent % flows */
	__u64 skipped; /* frames a late generator did not send */
	__u64 position; /* ring entries passed, sent or not */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_progress);
} xvs_gen_progress SEC(".maps");

/* Must match bench/src/agent/xdp.rs's SinkCounters. */
struct sink_counters {
	__u64 frames;
	__u64 bytes;
	__u64 bad_checksum;
	__u64 replies; /* SYN|ACK and FIN|ACK sent back (TCP) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_counters);
} xvs_sink_counters SEC(".maps");

/* Must match bench/src/agent/xdp.rs's SinkConfig: what the sink counts (host order). */
struct sink_config {
	__u32 port;
	/* the generator's sources: the last 32 bits src_base .. src_base + src_count - 1 */
	__u32 src_base;
	__u32 src_count; /* 0: any source */
	__u32 tcp; /* 1: answer TCP conversations to `port` (bench/src/agent/tcp.rs), not UDP */
	__u32 family; /* 6: IPv6 frames; anything else: IPv4 */
	__u32 src_prefix[3]; /* IPv6: the first 96 bits of the generator's sources, network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sink_config);
} xvs_sink_config SEC(".maps");

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624 eqn. 3 on a 32-bit field; all values as they are in the packet (the one's
 * complement sum does not depend on byte order as long as it is the same throughout). */
static __always_inline __u16 csum_replace32(__u16 check, __u32 old, __u32 new)
{
	return ~csum_fold((__u32)(__u16)~check + (__u16)~(old >> 16) + (__u16)~(old & 0xffff) +
			  (new >> 16) + (new & 0xffff));
}

static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	return ~csum_fold((__u32)(__u16)~check + (__u16)~old + new);
}

/* What flow n changes in the template (network order), and the template's values. */
struct flow_fields {
	__u32 saddr0, saddr; /* IPv6: the last 32 bits */
	__u16 sport0, sport;
	__u32 flow_be;
	__u16 id; /* IPv4's identification */
};

/* The template's IPv4 headers made flow f's, checksums derived from the template's; 0 if the
 * frame is too short. */
static __always_inline int make_flow4(struct gen_config *cfg, void *data, void *data_end,
				      __u32 dst_index, struct flow_fields *f)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 *flow_field = (void *)(udp + 1) + 4;

	if (data + HEADER4_LEN > data_end || (void *)(flow_field + 1) > data_end)
		return 0;
	__builtin_memcpy(data, cfg->header, HEADER4_LEN);
	__u32 daddr0 = cfg->dst[0][0];
	__u32 daddr = cfg->dst[dst_index][0];
	__u16 ip_check = csum_replace32(ip->check, f->saddr0, f->saddr);
	ip_check = csum_replace32(ip_check, daddr0, daddr);
	ip_check = csum_replace16(ip_check, 0, f->id);
	__u16 udp_check = csum_replace32(udp->check, f->saddr0, f->saddr);
	udp_check = csum_replace32(udp_check, daddr0, daddr);
	udp_check = csum_replace16(udp_check, f->sport0, f->sport);
	udp_check = csum_replace32(udp_check, 0, f->flow_be);

	ip->saddr = f->saddr;
	ip->daddr = daddr;
	ip->id = f->id;
	ip->check = ip_check;
	udp->source = f->sport;
	udp->check = udp_check == 0 ? 0xffff : udp_check;
	*flow_field = f->flow_be;
	return 1;
}

/* The same for IPv6: the last 32 bits of the source, the whole destination, no header
 * checksum (the UDP one covers the addresses); 0 if the frame is too short. */
static __always_inline int make_flow6(struct gen_config *cfg, void *data, void *data_end,
				      __u32 dst_index, struct flow_fields *f)
{
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);
	__u32 *flow_field = (void *)(udp + 1) + 4;

	if (data + HEADER6_LEN > data_end || (void *)(flow_field + 1) > data_end ||
	    dst_index >= MAX_DESTINATIONS)
		return 0;
	__builtin_memcpy(data, cfg->header, HEADER6_LEN);
	__u16 udp_check = csum_replace32(udp->check, f->saddr0, f->saddr);
#pragma unroll
	for (int w = 0; w < 4; w++)
		udp_check = csum_replace32(udp_check, cfg->dst[0][w], cfg->dst[dst_index][w]);
	udp_check = csum_replace16(udp_check, f->sport0, f->sport);
	udp_check = csum_replace32(udp_check, 0, f->flow_be);

	ip6->saddr.in6_u.u6_addr32[3] = f->saddr;
	__builtin_memcpy(&ip6->daddr, cfg->dst[dst_index], 16);
	udp->source = f->sport;
	/* 0 is sent as 0xffff: IPv6 forbids a zero UDP checksum. */
	udp->check = udp_check == 0 ? 0xffff : udp_check;
	*flow_field = f->flow_be;
	return 1;
}

SEC("xdp")
int xvs_bench_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;

	struct gen_config *cfg = bpf_map_lookup_elem(&xvs_gen_config, &zero);
	struct gen_progress *progress = bpf_map_lookup_elem(&xvs_gen_progress, &zero);
	if (!cfg || !progress || cfg->flows == 0 || cfg->src_count == 0 || cfg->dst_count == 0)
		return XDP_ABORTED;
	__u64 now = bpf_ktime_get_ns();
	if (now < cfg->start_ns || now >= cfg->end_ns)
		return XDP_DROP;
	if (cfg->interval_ns) {
		__u64 due = (now - cfg->start_ns) / cfg->interval_ns + 1 - progress->skipped;
		if (progress->sent >= due)
			return XDP_DROP;
		if (due - progress->sent > MAX_DEBT)
			progress->skipped += due - progress->sent - MAX_DEBT;
	}
	if (cfg->ring_len) {
		__u64 position = progress->position;
		progress->position += 1;
		__u32 index = position % cfg->ring_len;
		struct ring_frame *frame = bpf_map_lookup_elem(&xvs_gen_ring, &index);
		if (!frame || data + RING_FRAME_MAX > data_end)
			return XDP_ABORTED;
		/* Not sent and not counted: the next run, due at once, takes the next entry. */
		if ((frame->len & RING_SKIP_FIRST_PASS) && position < cfg->ring_len)
			return XDP_DROP;
		__u32 len = frame->len & ~RING_SKIP_FIRST_PASS;
		progress->sent += 1;
		__builtin_memcpy(data, frame->data, RING_FRAME_MAX);
		if (len < RING_FRAME_MAX && bpf_xdp_adjust_tail(ctx, (int)len - RING_FRAME_MAX))
			return XDP_ABORTED;
		return bpf_redirect(cfg->ifindex, 0);
	}

	__u64 n = progress->sent;
	progress->sent += 1;

	__u32 flow = n % cfg->flows;
	__u32 dst_index = flow % cfg->dst_count;
	if (dst_index >= MAX_DESTINATIONS)
		return XDP_ABORTED;
	/* The template is flow 0: source src_base:sport_base, destination dst[0], IP id 0,
	 * flow number 0 in the payload. */
	struct flow_fields f = {
		.saddr0 = bpf_htonl(cfg->src_base),
		.saddr = bpf_htonl(cfg->src_base + flow % cfg->src_count),
		.sport0 = bpf_htons(cfg->sport_base),
		.sport = bpf_htons(cfg->sport_base + flow / cfg->src_count),
		.flow_be = bpf_htonl(flow),
		.id = bpf_htons((__u16)flow),
	};
	int ok = cfg->family == 6 ? make_flow6(cfg, data, data_end, dst_index, &f) :
				    make_flow4(cfg, data, data_end, dst_index, &f);
	if (!ok)
		return XDP_ABORTED;
	return bpf_redirect(cfg->ifindex, 0);
}

/* The one's complement sum of `n` 32-bit words as they are in the packet (addresses), not
 * folded. */
static __always_inline __u32 words_sum(const __u32 *w, int n)
{
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 4; i++)
		if (i < n)
			sum += (w[i] >> 16) + (w[i] & 0xffff);
	return sum;
}

/* The one's complement sum of the `len`-byte transport segment at `l4` (at most MAX_UDP_LEN)
 * and its pseudo-header (`addrs`: the sum of its addresses, words_sum), folded: 0xffff when
 * the checksum is right. The length is 16 bits in IPv4's pseudo-header and 32 in IPv6's: the
 * same sum for a length below 65536. */
static __always_inline int l4_checksum_ok(__u32 addrs, void *l4, __u32 len, __u8 proto,
					  void *data_end)
{
	__u32 sum = addrs + bpf_htons(proto) + bpf_htons((__u16)len);
	if (len > MAX_UDP_LEN || l4 + len > data_end)
		return 0;
	__u16 *word = l4;
	for (__u32 i = 0; i < MAX_UDP_LEN / 2; i++) {
		if (2 * i + 2 > len)
			break;
		if ((void *)(word + i + 1) > data_end)
			return 0;
		sum += word[i];
	}
	if (len & 1) {
		__u8 *last = l4 + (len & 0x7ff) - 1;
		if ((void *)(last + 1) > data_end)
			return 0;
		sum += bpf_htons((__u16)*last << 8);
	}
	return csum_fold(sum) == 0xffff;
}

/* A zero checksum means "none" in IPv4 and is invalid in IPv6 (RFC 8200, section 8.1). */
static __always_inline int udp_checksum_ok(__u32 addrs, struct udphdr *udp, void *data_end,
					   int zero_ok)
{
	__u32 len = bpf_ntohs(udp->len);
	if (len < sizeof(*udp))
		return 0;
	if (udp->check == 0)
		return zero_ok;
	return l4_checksum_ok(addrs, udp, len, IPPROTO_UDP, data_end);
}

static __always_inline int ipv4_checksum_ok(struct iphdr *ip)
{
	__u16 *word = (void *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += word[i];
	return csum_fold(sum) == 0xffff;
}

/* bench/src/agent/tcp.rs's mix(): splitmix64's finaliser of (address, port) ^ salt. */
static __always_inline __u32 mix(__u32 addr, __u16 port, __u64 salt)
{
	__u64 z = ((__u64)addr << 16 | port) ^ salt;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (__u32)(z ^ (z >> 31));
}

#define SERVER_ISN_SALT 0x726573706f6e6465ULL /* tcp.rs server_isn() */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
/* Answers are the headers alone, an IPv4 one padded to 60 bytes, as tcp.rs's. */
#define REPLY4_LEN 60
#define REPLY6_LEN (14 + 40 + 20)

/* The TCP responder (bench/src/agent/tcp.rs's answer(), which the agent responder runs on the
 * reals): a segment to the port whose checksums verify is counted; a SYN is answered with
 * SYN|ACK and a FIN with FIN|ACK, back where it came from (to the director), the
 * same bytes the agent would send; everything else of the conversation is dropped here.
 * `v6` is a constant of each call: the frame is IPv6 (no extension headers) or IPv4 (no
 * options). */
static __always_inline int answer_tcp(struct xdp_md *ctx, struct sink_counters *c, __u16 port,
				      const int v6)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const __u32 ip_len = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	const int reply_len = v6 ? REPLY6_LEN : REPLY4_LEN;
	__u8 *tcp = data + sizeof(*eth) + ip_len;
	/* Addresses as in the packet; IPv4's in word 0. */
	__u32 client[4] = {}, server[4] = {};
	__u32 tcp_len, header_ok = 1;
	__u16 ip_id = 0;
	if ((void *)(tcp + 20) > data_end)
		return XDP_PASS;
	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		tcp_len = bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(client, &ip6->saddr, 16);
		__builtin_memcpy(server, &ip6->daddr, 16);
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 total = bpf_ntohs(ip->tot_len);
		if (total < 20)
			return XDP_PASS;
		tcp_len = total - 20;
		client[0] = ip->saddr;
		server[0] = ip->daddr;
		ip_id = ip->id;
		header_ok = ipv4_checksum_ok(ip);
	}
	if (tcp_len < 20 || (void *)tcp + tcp_len > data_end)
		return XDP_PASS;
	const int words = v6 ? 4 : 1;
	__u32 addrs = words_sum(client, words) + words_sum(server, words);
	__u32 data_off = (tcp[12] >> 4) * 4;
	if (!header_ok || !l4_checksum_ok(addrs, tcp, tcp_len, IPPROTO_TCP, data_end) ||
	    data_off < 20 || data_off > tcp_len) {
		c->bad_checksum++;
		return XDP_DROP;
	}
	c->frames++;
	c->bytes += data_end - data;
	__u8 flags = tcp[13];
	__u32 seq = bpf_ntohl(*(__u32 *)(tcp + 4));
	__u16 sport = bpf_ntohs(*(__u16 *)tcp);
	/* tcp.rs's addr_word(): an IPv6 address's 32-bit words XORed. */
	__u32 client_word = bpf_ntohl(client[0] ^ client[1] ^ client[2] ^ client[3]);
	__u32 s = mix(client_word, sport, SERVER_ISN_SALT);
	__u32 reply_seq, reply_ack;
	__u8 reply_flags;
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_SYN) {
		reply_seq = s;
		reply_ack = seq + 1;
		reply_flags = TCP_SYN | TCP_ACK;
	} else if ((flags & (TCP_FIN | TCP_RST)) == TCP_FIN) {
		reply_seq = s + 1;
		reply_ack = seq + (tcp_len - data_off) + 1;
		reply_flags = TCP_FIN | TCP_ACK;
	} else {
		return XDP_DROP;
	}
	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	int len = data_end - data;
	if (len != reply_len && bpf_xdp_adjust_tail(ctx, reply_len - len))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	tcp = data + sizeof(*eth) + ip_len;
	if (data + reply_len > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__builtin_memset((void *)(eth + 1), 0, reply_len - sizeof(*eth));
	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		ip6->version = 6;
		ip6->payload_len = bpf_htons(20);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, server, 16);
		__builtin_memcpy(&ip6->daddr, client, 16);
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = bpf_htons(40);
		ip->id = ip_id;
		ip->frag_off = bpf_htons(0x4000); /* DF */
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = server[0];
		ip->daddr = client[0];
		__u16 *word = (void *)ip;
		__u32 sum = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += word[i];
		ip->check = ~csum_fold(sum);
	}
	*(__u16 *)tcp = bpf_htons(port);
	*(__u16 *)(tcp + 2) = bpf_htons(sport);
	*(__u32 *)(tcp + 4) = bpf_htonl(reply_seq);
	*(__u32 *)(tcp + 8) = bpf_htonl(reply_ack);
	tcp[12] = 5 << 4;
	tcp[13] = reply_flags;
	*(__u16 *)(tcp + 14) = bpf_htons(65535);
	__u32 sum = addrs + bpf_htons(IPPROTO_TCP) + bpf_htons(20);
	__u16 *word = (void *)tcp;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += word[i];
	*(__u16 *)(tcp + 16) = ~csum_fold(sum);
	c->replies++;
	/* Out by the port it came in by, as XDP_TX would, but through ndo_xdp_xmit: veth flushes
	 * an XDP_TX only to a peer with an XDP program, a redirect to one with GRO too (the
	 * kernel targets' internal veth). */
	return bpf_redirect(ctx->ingress_ifindex, 0);
}

/* The sink's work on a frame whose IP header it has read: `l4` is the transport header (at
 * least 12 bytes of it within the frame: ports, and UDP's magic), `addrs` the pseudo-header's
 * address sum. */
static __always_inline int sink_l4(struct xdp_md *ctx, struct sink_config *cfg,
				   struct sink_counters *c, __u8 proto, struct udphdr *udp,
				   __u32 addrs, int header_ok, const int v6)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 *magic = (void *)(udp + 1);

	if ((void *)(magic + 1) > data_end)
		return XDP_PASS;
	if (cfg->tcp) {
		/* Ports are where UDP's are: the first four bytes after the IP header. */
		if (proto != IPPROTO_TCP || udp->dest != bpf_htons((__u16)cfg->port))
			return XDP_PASS;
		return answer_tcp(ctx, c, (__u16)cfg->port, v6);
	}
	if (proto != IPPROTO_UDP || *magic != MAGIC || udp->dest != bpf_htons((__u16)cfg->port))
		return XDP_PASS;
	if (header_ok && udp_checksum_ok(addrs, udp, data_end, !v6)) {
		c->frames++;
		c->bytes += data_end - data;
	} else {
		c->bad_checksum++;
	}
	return XDP_DROP;
}

SEC("xdp")
int xvs_bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	struct sink_config *cfg = bpf_map_lookup_elem(&xvs_sink_config, &zero);
	struct sink_counters *c = bpf_map_lookup_elem(&xvs_sink_counters, &zero);
	if (!cfg || !c)
		return XDP_PASS;
	/* Latency probes carry the magic too, from another source: they go on to the reals. */
	if (cfg->family == 6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6) ||
		    ip6->version != 6)
			return XDP_PASS;
		__u32 *src = ip6->saddr.in6_u.u6_addr32;
		if (cfg->src_count &&
		    (src[0] != cfg->src_prefix[0] || src[1] != cfg->src_prefix[1] ||
		     src[2] != cfg->src_prefix[2] ||
		     bpf_ntohl(src[3]) - cfg->src_base >= cfg->src_count))
			return XDP_PASS;
		__u32 addrs = words_sum(src, 4) + words_sum(ip6->daddr.in6_u.u6_addr32, 4);
		return sink_l4(ctx, cfg, c, ip6->nexthdr, (void *)(ip6 + 1), addrs, 1, 1);
	}
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return XDP_PASS;
	if (cfg->src_count && bpf_ntohl(ip->saddr) - cfg->src_base >= cfg->src_count)
		return XDP_PASS;
	__u32 addrs = words_sum(&ip->saddr, 1) + words_sum(&ip->daddr, 1);
	int header_ok = ipv4_checksum_ok(ip);
	return sink_l4(ctx, cfg, c, ip->protocol, (void *)(ip + 1), addrs, header_ok, 0);
}

SEC("xdp")
int xvs_bench_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, outer_eth;
	struct iphdr *ip = (void *)(eth + 1);
	__u32 zero = 0, strip;
	__u8 *next;
	struct sink_config *cfg = bpf_map_lookup_elem(&xvs_sink_config, &zero);
	struct sink_counters *c = bpf_map_lookup_elem(&xvs_sink_counters, &zero);

	if (!cfg || !c || (void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))	/* MF or an offset */
		return XDP_PASS;
	next = (void *)(ip + 1);
	if ((void *)(next + 12) > data_end)
		return XDP_PASS;
	switch (ip->protocol) {
	case IPPROTO_IPIP:
		strip = 20;
		break;
	case IPPROTO_UDP: {
		struct udphdr *udp = (void *)next;

		/* GUE variant 0 without options, flags or control messages, carrying IPv4. */
		if (udp->dest != bpf_htons((__u16)cfg->port) || next[8] != 0 || next[9] != 4 ||
		    next[10] != 0 || next[11] != 0)
			return XDP_PASS;
		strip = 20 + 8 + 4;
		break;
	}
	case IPPROTO_GRE:
		/* Version 0, no key or sequence number; an optional checksum. */
		if ((next[0] & 0x7f) != 0 || next[1] != 0 || next[2] != 0x08 || next[3] != 0)
			return XDP_PASS;
		strip = 20 + (next[0] & 0x80 ? 8 : 4);
		break;
	default:
		return XDP_PASS;
	}
	__builtin_memcpy(&outer_eth, eth, sizeof(outer_eth));
	if (bpf_xdp_adjust_head(ctx, strip))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth, &outer_eth, sizeof(outer_eth));
	c->frames++;
	c->bytes += data_end - data;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
