/* framerelay: a guest stand-in for the passt-mode benchmark (tests/bench/passt_bench.py).
 *
 * Joins a tap device (the "guest" network namespace's kernel stack plays the guest) to a
 * passt-mode translator's UNIX stream socket, with passt's framing: each frame preceded by its
 * length as a 4-byte big-endian integer, both ways, no virtio-net header.
 *
 *   framerelay SOCKET_PATH TAP_NAME
 *
 * Creates TAP_NAME (IFF_TAP | IFF_NO_PI, non-persistent) in the calling network namespace,
 * connects to SOCKET_PATH, prints "ready" on stdout, then relays until either side ends. Two
 * threads, one per direction, each with blocking I/O: a frame is always written whole (the
 * rest of a short write follows at once), so the stream never carries half a frame, and a
 * direction that waits for its reader never stops the other one.
 *
 * Why not QEMU with `-netdev hubport` between `-netdev stream` and `-netdev tap`: QEMU 7.2's
 * stream back end keeps the offset of a partly written frame and expects the same frame back,
 * but a hub hands it the next one, and iov_copy() aborts ("Assertion `offset == 0' failed")
 * as soon as the translator's socket buffer fills once. A real virtio guest retries the same
 * frame; a hub does not.
 *
 * Built by passt_bench.py with `gcc -O2 -pthread`; test tool only.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FRAME_MAX 65535

static int tap_fd, sock_fd;

static void die(const char *what)
{
	fprintf(stderr, "framerelay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* Tap -> socket: one frame per read(), written with its length in one writev-like buffer. */
static void *tap_to_sock(void *arg)
{
	static char buf[4 + FRAME_MAX];

	(void)arg;
	for (;;) {
		ssize_t n = read(tap_fd, buf + 4, FRAME_MAX);
		uint32_t len;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len = htonl((uint32_t)n);
		memcpy(buf, &len, 4);
		if (write_all(sock_fd, buf, 4 + n))
			break;
	}
	exit(0);
}

/* Socket -> tap: read the length, then the frame, then one write() to the tap. */
static void *sock_to_tap(void *arg)
{
	static char buf[FRAME_MAX];

	(void)arg;
	for (;;) {
		uint32_t len;

		if (read_all(sock_fd, &len, 4))
			break;
		len = ntohl(len);
		if (len < 14 || len > FRAME_MAX) {
			fprintf(stderr, "framerelay: bad frame length %u\n", len);
			exit(1);
		}
		if (read_all(sock_fd, buf, len))
			break;
		/* A full tap queue drops the frame, as a NIC would; anything else ends us. */
		if (write(tap_fd, buf, len) < 0 && errno != EAGAIN && errno != ENOBUFS &&
		    errno != EIO)
			die("write to tap");
	}
	exit(0);
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct ifreq ifr = { 0 };
	pthread_t a, b;

	if (argc != 3) {
		fprintf(stderr, "usage: framerelay SOCKET_PATH TAP_NAME\n");
		return 2;
	}
	tap_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (tap_fd < 0)
		die("open /dev/net/tun");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[2]);
	if (ioctl(tap_fd, TUNSETIFF, &ifr))
		die("TUNSETIFF");
	sock_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock_fd < 0)
		die("socket");
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", argv[1]);
	if (connect(sock_fd, (struct sockaddr *)&addr, sizeof(addr)))
		die("connect");
	printf("ready\n");
	fflush(stdout);
	if (pthread_create(&a, NULL, tap_to_sock, NULL) ||
	    pthread_create(&b, NULL, sock_to_tap, NULL))
		die("pthread_create");
	pthread_join(a, NULL);
	return 0;
}
