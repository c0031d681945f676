/*
 * epoll_echo: single-threaded, level-triggered epoll TCP echo server.
 * Baseline peer for ringflow's echo benchmark.
 *
 *   usage: epoll_echo PORT        (PORT 0 = ephemeral)
 *
 * Binds 127.0.0.1, prints "listening <port>" once ready, exits 0 on
 * SIGINT/SIGTERM (delivered through a signalfd in the epoll set).
 *
 * Per readable event: one read() into a shared buffer, one write() back.
 * If the write is short, the remainder is copied into a per-connection
 * pending buffer, the connection stops reading (EPOLLIN off) and waits for
 * EPOLLOUT until the backlog is flushed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_SIZE  (64 * 1024)

struct conn {
	int open;
	char *pend;     /* unsent bytes, malloc'd; NULL when nothing pending */
	size_t len;     /* bytes in pend */
	size_t off;     /* bytes of pend already sent */
};

static struct conn *conns;
static int nconns_cap;
static int epfd;
static char rbuf[READ_SIZE];

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct conn *conn_get(int fd)
{
	if (fd >= nconns_cap) {
		int cap = nconns_cap ? nconns_cap : 1024;
		while (cap <= fd)
			cap *= 2;
		conns = realloc(conns, (size_t)cap * sizeof(*conns));
		if (!conns)
			die("realloc");
		memset(conns + nconns_cap, 0,
		       (size_t)(cap - nconns_cap) * sizeof(*conns));
		nconns_cap = cap;
	}
	return &conns[fd];
}

static void conn_close(int fd)
{
	struct conn *c = &conns[fd];

	free(c->pend);
	memset(c, 0, sizeof(*c));
	close(fd); /* also removes fd from the epoll set */
}

static void set_events(int fd, unsigned events)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		die("epoll_ctl MOD");
}

/* Write pend[off..len); returns 0 when drained, 1 if still pending, -1 on error. */
static int flush_pending(int fd, struct conn *c)
{
	while (c->off < c->len) {
		ssize_t n = write(fd, c->pend + c->off, c->len - c->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -1;
		}
		c->off += (size_t)n;
	}
	free(c->pend);
	c->pend = NULL;
	c->len = c->off = 0;
	return 0;
}

static void on_readable(int fd, struct conn *c)
{
	ssize_t n, w;

	n = read(fd, rbuf, sizeof(rbuf));
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_close(fd); /* EOF or error */
		return;
	}
	w = write(fd, rbuf, (size_t)n);
	if (w < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			conn_close(fd);
			return;
		}
		w = 0;
	}
	if (w < n) {
		/* short write: park the rest, stop reading, wait for EPOLLOUT */
		c->len = (size_t)(n - w);
		c->off = 0;
		c->pend = malloc(c->len);
		if (!c->pend)
			die("malloc");
		memcpy(c->pend, rbuf + w, c->len);
		set_events(fd, EPOLLOUT);
	}
}

static void on_writable(int fd, struct conn *c)
{
	int r = flush_pending(fd, c);

	if (r < 0)
		conn_close(fd);
	else if (r == 0)
		set_events(fd, EPOLLIN);
}

static void on_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				perror("accept4");
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

		struct conn *c = conn_get(fd);
		c->open = 1;
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("epoll_ctl ADD");
			conn_close(fd);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	struct epoll_event ev, events[MAX_EVENTS];
	sigset_t mask;
	int lfd, sfd, one = 1, running = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		die("sigprocmask");
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("bind");
	if (listen(lfd, SOMAXCONN) < 0)
		die("listen");
	if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
		die("getsockname");

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl listener");
	ev.events = EPOLLIN;
	ev.data.fd = sfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0)
		die("epoll_ctl signalfd");

	printf("listening %d\n", ntohs(addr.sin_port));
	fflush(stdout);

	while (running) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			unsigned e = events[i].events;

			if (fd == lfd) {
				on_accept(lfd);
			} else if (fd == sfd) {
				running = 0;
			} else {
				struct conn *c = &conns[fd];
				if (!c->open)
					continue; /* closed earlier in this batch */
				if (c->pend) {
					if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
						on_writable(fd, c);
				} else if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
					on_readable(fd, c);
				}
			}
		}
	}

	for (int fd = 0; fd < nconns_cap; fd++)
		if (conns[fd].open)
			conn_close(fd);
	free(conns);
	close(epfd);
	close(lfd);
	close(sfd);
	return 0;
}
