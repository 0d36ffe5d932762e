/* guestnet: the network tools the pypasta test guest's busybox lacks (tests/helpers/guest.py).
 *
 * Debian 12's busybox 1.35 has no udhcpc6 and its nc has no UDP (-u). tests/install-deps.sh
 * (step 8) builds this file with `gcc -static` into the guest's initramfs as /usr/bin/guestnet.
 * Numeric addresses only (a static glibc has no NSS); an IPv6 link-local address takes a zone,
 * `fe80::1%eth0`.
 *
 *   guestnet dhcp6 IFNAME [TIMEOUT_S]
 *       DHCPv6 client (RFC 8415 section 18.2.1-18.2.10, stateful, one exchange): Solicit with
 *       IA_NA and an Option Request for DNS servers (23) and the domain search list (24), then
 *       Request to the first Advertise (or done at a Rapid Commit Reply), retransmitting every
 *       second until TIMEOUT_S (default 10). Prints "address A", "dns A" and "search D" lines,
 *       then runs /usr/share/udhcpc/default6.script with "bound" and, in the environment,
 *       what busybox's udhcpc6 would pass: interface, ipv6, dns and search (space-separated).
 *       Exits 0 with a lease, 1 without (a Status Code other than Success is printed).
 *   guestnet udp-echo ADDR PORT
 *       Binds ADDR:PORT, prints "ready", and echoes every datagram to its sender, forever.
 *   guestnet udp-ping ADDR PORT COUNT SIZE [TIMEOUT_MS]
 *       Sends COUNT datagrams of SIZE bytes (a sequence number and a pattern) one at a time
 *       from a connected socket, each waiting up to TIMEOUT_MS (default 2000) for its echo.
 *       Prints each failure and "sent N ok M"; exits 0 only if every echo came back intact.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DHCP6_SCRIPT "/usr/share/udhcpc/default6.script"
#define CLIENT_PORT 546
#define SERVER_PORT 547

enum { SOLICIT = 1, ADVERTISE = 2, REQUEST = 3, REPLY = 7 };
enum { OPT_CLIENTID = 1, OPT_SERVERID = 2, OPT_IA_NA = 3, OPT_IAADDR = 5, OPT_ORO = 6,
       OPT_ELAPSED = 8, OPT_STATUS = 13, OPT_RAPID_COMMIT = 14, OPT_DNS = 23,
       OPT_DOMAINS = 24 };

static void die(const char *what)
{
	fprintf(stderr, "guestnet: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint8_t *put16(uint8_t *p, unsigned v)
{
	p[0] = v >> 8;
	p[1] = v;
	return p + 2;
}

static uint8_t *put_opt(uint8_t *p, unsigned type, const void *val, size_t len)
{
	p = put16(put16(p, type), len);
	memcpy(p, val, len);
	return p + len;
}

/* Find option `type` in [p, end): its value and length, or NULL. */
static const uint8_t *find_opt(const uint8_t *p, const uint8_t *end, unsigned type, size_t *len)
{
	while (end - p >= 4) {
		size_t l = get16(p + 2);

		if ((size_t)(end - p - 4) < l)
			return NULL;
		if (get16(p) == type) {
			*len = l;
			return p + 4;
		}
		p += 4 + l;
	}
	return NULL;
}

/* A Status Code option in [p, end) other than Success: print it and return 1. */
static int bad_status(const uint8_t *p, const uint8_t *end, const char *where)
{
	const uint8_t *s;
	size_t len;

	s = find_opt(p, end, OPT_STATUS, &len);
	if (!s || len < 2 || get16(s) == 0)
		return 0;
	printf("status %u in %s: %.*s\n", get16(s), where, (int)(len - 2), (const char *)s + 2);
	return 1;
}

/* Parse (in RFC 1035 wire form) the domain list in [p, end) into `out`, space-separated. */
static void domains(const uint8_t *p, const uint8_t *end, char *out, size_t outlen)
{
	size_t n = strlen(out);

	while (p < end) {
		char name[256] = "";
		size_t nl = 0;

		while (p < end && *p) {
			unsigned l = *p++;

			if (l > 63 || (size_t)(end - p) < l || nl + l + 2 > sizeof(name))
				return;
			if (nl)
				name[nl++] = '.';
			memcpy(name + nl, p, l);
			nl += l;
			name[nl] = 0;
			p += l;
		}
		p++;                                    /* the root label */
		if (nl && n + nl + 2 < outlen) {
			printf("search %s\n", name);
			n += sprintf(out + n, "%s%s", n ? " " : "", name);
		}
	}
}

static int dhcp6(const char *ifname, double timeout)
{
	struct sockaddr_in6 dst = { .sin6_family = AF_INET6, .sin6_port = htons(SERVER_PORT) };
	struct sockaddr_in6 src = { .sin6_family = AF_INET6, .sin6_port = htons(CLIENT_PORT) };
	uint8_t duid[10] = { 0, 3, 0, 1 }, ia[12] = { 0 }, oro[4], advertised[1024];
	uint8_t msg[1500], buf[65536], *p;
	size_t serverid_len = 0, ia_len = 0;
	const uint8_t *serverid = NULL, *ia_adv = NULL;
	unsigned ifindex = if_nametoindex(ifname), xid;
	double start = now_s(), next = 0;
	int s, one = 1, type = SOLICIT;
	struct ifreq ifr = { 0 };

	if (!ifindex)
		die(ifname);
	s = socket(AF_INET6, SOCK_DGRAM, 0);
	if (s < 0)
		die("socket");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
		die("SIOCGIFHWADDR");
	memcpy(duid + 4, ifr.ifr_hwaddr.sa_data, 6);
	memcpy(ia, duid + 6, 4);                        /* IAID: the MAC's last four bytes */
	put16(put16(oro, OPT_DNS), OPT_DOMAINS);
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, ifname, strlen(ifname)) < 0 ||
	    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex)) < 0)
		die("setsockopt");
	if (bind(s, (struct sockaddr *)&src, sizeof(src)) < 0)
		die("bind [::]:546");
	inet_pton(AF_INET6, "ff02::1:2", &dst.sin6_addr);
	dst.sin6_scope_id = ifindex;
	srand(time(NULL) ^ getpid());
	xid = rand() & 0xffffff;

	while (now_s() < start + timeout) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		unsigned cs = (now_s() - start) * 100;
		uint8_t elapsed[2];
		ssize_t n;

		if (now_s() >= next) {                  /* (re)transmit, once a second */
			put16(elapsed, cs > 0xffff ? 0xffff : cs);
			p = msg;
			*p++ = type;
			*p++ = xid >> 16;
			*p++ = xid >> 8;
			*p++ = xid;
			p = put_opt(p, OPT_CLIENTID, duid, sizeof(duid));
			if (type == REQUEST) {
				p = put_opt(p, OPT_SERVERID, serverid, serverid_len);
				p = put_opt(p, OPT_IA_NA, ia_adv, ia_len);
			} else {
				p = put_opt(p, OPT_IA_NA, ia, sizeof(ia));
				p = put_opt(p, OPT_RAPID_COMMIT, NULL, 0);
			}
			p = put_opt(p, OPT_ELAPSED, elapsed, sizeof(elapsed));
			p = put_opt(p, OPT_ORO, oro, sizeof(oro));
			/* A tentative link-local address (DAD) makes this fail: try again. */
			if (sendto(s, msg, p - msg, 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
				fprintf(stderr, "guestnet: sendto: %s\n", strerror(errno));
			next = now_s() + 1;
		}
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = recv(s, buf, sizeof(buf), 0);
		if (n < 4 || (get16(buf + 1) << 8 | buf[3]) != xid)
			continue;
		const uint8_t *end = buf + n, *opts = buf + 4, *cid, *sid, *ia_r, *a;
		size_t cid_len, sid_len, ia_r_len, a_len;

		cid = find_opt(opts, end, OPT_CLIENTID, &cid_len);
		if (!cid || cid_len != sizeof(duid) || memcmp(cid, duid, sizeof(duid)))
			continue;
		sid = find_opt(opts, end, OPT_SERVERID, &sid_len);
		ia_r = find_opt(opts, end, OPT_IA_NA, &ia_r_len);
		if (!sid || bad_status(opts, end, "the message"))
			continue;
		if (!ia_r || ia_r_len < 12 || bad_status(ia_r + 12, ia_r + ia_r_len, "IA_NA"))
			continue;
		if (buf[0] == ADVERTISE && type == SOLICIT) {
			if ((size_t)n > sizeof(advertised))
				continue;
			memcpy(advertised, buf, n);
			serverid = advertised + (sid - buf);
			serverid_len = sid_len;
			ia_adv = advertised + (ia_r - buf);
			ia_len = ia_r_len;
			type = REQUEST;
			next = 0;
			continue;
		}
		if (buf[0] != REPLY)
			continue;

		a = find_opt(ia_r + 12, ia_r + ia_r_len, OPT_IAADDR, &a_len);
		if (!a || a_len < 24)
			continue;
		char addr[INET6_ADDRSTRLEN], dns[1024] = "", search[1024] = "";
		const uint8_t *d;
		size_t d_len;

		inet_ntop(AF_INET6, a, addr, sizeof(addr));
		printf("address %s\n", addr);
		d = find_opt(opts, end, OPT_DNS, &d_len);
		for (size_t i = 0; d && i + 16 <= d_len; i += 16) {
			char one_dns[INET6_ADDRSTRLEN];

			inet_ntop(AF_INET6, d + i, one_dns, sizeof(one_dns));
			printf("dns %s\n", one_dns);
			if (strlen(dns) + strlen(one_dns) + 2 < sizeof(dns))
				sprintf(dns + strlen(dns), "%s%s", *dns ? " " : "", one_dns);
		}
		d = find_opt(opts, end, OPT_DOMAINS, &d_len);
		if (d)
			domains(d, d + d_len, search, sizeof(search));
		fflush(stdout);
		close(s);

		if (access(DHCP6_SCRIPT, X_OK))
			return 0;
		pid_t pid = fork();
		int status;

		if (pid == 0) {
			setenv("interface", ifname, 1);
			setenv("ipv6", addr, 1);
			setenv("dns", dns, 1);
			setenv("search", search, 1);
			execl(DHCP6_SCRIPT, DHCP6_SCRIPT, "bound", (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0)
			die("running " DHCP6_SCRIPT);
		return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	}
	printf("no DHCPv6 lease on %s within %g s\n", ifname, timeout);
	return 1;
}

/* ADDR (v4, v6, v6%zone) and PORT into `sa`; returns its length. */
static socklen_t parse_addr(const char *addr, const char *port, struct sockaddr_storage *sa)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 1], *zone;

	memset(sa, 0, sizeof(*sa));
	snprintf(host, sizeof(host), "%s", addr);
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(atoi(port));
		return sizeof(*s4);
	}
	zone = strchr(host, '%');
	if (zone) {
		*zone++ = 0;
		s6->sin6_scope_id = if_nametoindex(zone);
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
		fprintf(stderr, "guestnet: not a numeric address: %s\n", addr);
		exit(2);
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(atoi(port));
	return sizeof(*s6);
}

__attribute__((noreturn)) static void udp_echo(const char *addr, const char *port)
{
	struct sockaddr_storage sa, peer;
	socklen_t salen = parse_addr(addr, port, &sa), plen;
	static uint8_t buf[65536];
	int s = socket(sa.ss_family, SOCK_DGRAM, 0), one = 1;
	ssize_t n;

	if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("socket");
	if (bind(s, (struct sockaddr *)&sa, salen) < 0)
		die("bind");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		plen = sizeof(peer);
		n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&peer, &plen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("recvfrom");
		}
		if (sendto(s, buf, n, 0, (struct sockaddr *)&peer, plen) < 0)
			fprintf(stderr, "guestnet: sendto: %s\n", strerror(errno));
	}
}

static void fill(uint8_t *buf, size_t size, unsigned seq)
{
	for (size_t j = 0; j < size; j++)
		buf[j] = (uint8_t)(seq * 31 + j * 7 + 1);
	if (size >= 4) {
		buf[0] = seq >> 24;
		buf[1] = seq >> 16;
		buf[2] = seq >> 8;
		buf[3] = seq;
	}
}

static int udp_ping(const char *addr, const char *port, unsigned count, size_t size,
		    int timeout_ms)
{
	static uint8_t out[65536], in[65536];
	struct sockaddr_storage sa;
	socklen_t salen = parse_addr(addr, port, &sa);
	int s = socket(sa.ss_family, SOCK_DGRAM, 0);
	unsigned ok = 0;

	if (size > sizeof(out)) {
		fprintf(stderr, "guestnet: SIZE at most %zu\n", sizeof(out));
		return 2;
	}
	if (s < 0 || connect(s, (struct sockaddr *)&sa, salen) < 0)
		die("connect");
	for (unsigned seq = 0; seq < count; seq++) {
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		double deadline = now_s() + timeout_ms / 1000.0;
		ssize_t n = -1;
		int err = 0;

		fill(out, size, seq);
		if (send(s, out, size, 0) < 0) {
			printf("datagram %u: send: %s\n", seq, strerror(errno));
			continue;
		}
		/* Skip late echoes of earlier datagrams that timed out. */
		while (now_s() < deadline) {
			if (poll(&pfd, 1, (int)((deadline - now_s()) * 1000) + 1) <= 0)
				continue;
			n = recv(s, in, sizeof(in), 0);
			err = n < 0 ? errno : 0;
			if (n >= 4 && size >= 4 && memcmp(in, out, 4)) {
				n = -1;
				continue;
			}
			break;
		}
		if (n < 0 && err)
			printf("datagram %u: recv: %s\n", seq, strerror(err));
		else if (n < 0)
			printf("datagram %u: no echo within %d ms\n", seq, timeout_ms);
		else if ((size_t)n != size)
			printf("datagram %u: %zd bytes back, %zu sent\n", seq, n, size);
		else if (memcmp(in, out, size))
			printf("datagram %u: bytes changed\n", seq);
		else
			ok++;
	}
	printf("sent %u ok %u\n", count, ok);
	return ok == count ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && !strcmp(argv[1], "dhcp6"))
		return dhcp6(argv[2], argc > 3 ? atof(argv[3]) : 10);
	if (argc == 4 && !strcmp(argv[1], "udp-echo"))
		udp_echo(argv[2], argv[3]);
	if (argc >= 6 && !strcmp(argv[1], "udp-ping"))
		return udp_ping(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]),
				argc > 6 ? atoi(argv[6]) : 2000);
	fprintf(stderr, "usage: guestnet dhcp6 IFNAME [TIMEOUT_S]\n"
			"       guestnet udp-echo ADDR PORT\n"
			"       guestnet udp-ping ADDR PORT COUNT SIZE [TIMEOUT_MS]\n");
	return 2;
}
