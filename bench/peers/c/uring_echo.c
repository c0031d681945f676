/*
 * uring_echo: single-threaded raw-liburing TCP echo server.
 * Baseline peer for ringflow's echo benchmark.
 *
 *   usage: uring_echo [--no-defer] PORT      (PORT 0 = ephemeral)
 *
 * - ring: IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, falling
 *   back to a plain ring if the kernel says -EINVAL (or with --no-defer).
 * - one multishot accept on the listener.
 * - one multishot recv per connection, buffers picked by the kernel from a
 *   provided buffer ring (NR_BUFS x BUF_SIZE, group BGID).
 * - each received buffer is sent back as is; at most one send in flight per
 *   connection (later buffers queue behind it, so byte order is kept), short
 *   sends are resubmitted for the remainder, and the buffer goes back to the
 *   ring once fully sent.
 * - a recv CQE without IORING_CQE_F_MORE re-arms the recv; -ENOBUFS parks the
 *   connection until REARM_FREE buffers are back in the ring.
 * - one io_uring_submit_and_wait() per loop turn, CQEs reaped in a batch.
 * - SIGINT/SIGTERM are blocked and read through a signalfd polled on the ring.
 *
 * A connection's fd is closed only once no request references it (no recv
 * armed, no send in flight), so fd numbers are never reused under a live op.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define QUEUE_DEPTH 2048          /* SQ entries; CQ gets 2x */
#define NR_BUFS     1024          /* provided buffers (power of two) */
#define BUF_SIZE    4096          /* bytes per provided buffer */
#define BGID        0             /* buffer group id */
#define REARM_FREE  (NR_BUFS / 16) /* free buffers needed to re-arm stalled recvs */

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_SIGNAL };

/* user_data = op << 32 | fd */
static inline uint64_t ud(int op, int fd)
{
	return (uint64_t)op << 32 | (uint32_t)fd;
}

#ifndef IO_URING_VERSION_MAJOR
/*
 * liburing < 2.4 (Debian 12 ships 2.3) lacks io_uring_setup_buf_ring() and
 * io_uring_free_buf_ring(); these do what the 2.4 helpers do.
 */
static struct io_uring_buf_ring *io_uring_setup_buf_ring(struct io_uring *ring,
		unsigned int nentries, int bgid, unsigned int flags, int *ret)
{
	size_t sz = nentries * sizeof(struct io_uring_buf);
	struct io_uring_buf_reg reg;
	struct io_uring_buf_ring *br;
	int r;

	br = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED) {
		*ret = -errno;
		return NULL;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uintptr_t)br;
	reg.ring_entries = nentries;
	reg.bgid = (unsigned short)bgid;
	r = io_uring_register_buf_ring(ring, &reg, flags);
	if (r) {
		munmap(br, sz);
		*ret = r;
		return NULL;
	}
	io_uring_buf_ring_init(br);
	*ret = 0;
	return br;
}

static int io_uring_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
		unsigned int nentries, int bgid)
{
	int r = io_uring_unregister_buf_ring(ring, bgid);

	munmap(br, nentries * sizeof(struct io_uring_buf));
	return r;
}
#endif

struct conn {
	uint8_t open;
	uint8_t recv_armed;  /* multishot recv outstanding */
	uint8_t sending;     /* send of buffer `head` outstanding */
	uint8_t stalled;     /* recv ended with -ENOBUFS; on the stalled list */
	uint8_t dead;        /* error seen: drop data, close when idle */
	int head, tail;      /* FIFO of received buffer ids awaiting send */
	int stall_next;      /* stalled list link */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;                  /* NR_BUFS * BUF_SIZE bytes */
static int buf_len[NR_BUFS];        /* bytes received into buffer */
static int buf_off[NR_BUFS];        /* bytes of it already sent */
static int buf_next[NR_BUFS];       /* FIFO link */
static int nr_returned;             /* buffers added to br, not yet advanced */
static int nr_free;                 /* buffers owned by the kernel */

static struct conn *conns;
static int nconns_cap;
static int stalled_head = -1;
static int listen_fd;

static void die(const char *what, int err)
{
	fprintf(stderr, "uring_echo: %s: %s\n", what, strerror(err));
	exit(1);
}

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) { /* SQ full: flush it and retry */
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			die("io_uring_get_sqe", EBUSY);
	}
	return sqe;
}

static struct conn *conn_get(int fd)
{
	if (fd >= nconns_cap) {
		int cap = nconns_cap ? nconns_cap : 1024;
		while (cap <= fd)
			cap *= 2;
		conns = realloc(conns, (size_t)cap * sizeof(*conns));
		if (!conns)
			die("realloc", ENOMEM);
		memset(conns + nconns_cap, 0,
		       (size_t)(cap - nconns_cap) * sizeof(*conns));
		nconns_cap = cap;
	}
	return &conns[fd];
}

/* Hand a buffer back to the kernel; made visible by the advance at loop end. */
static void recycle(int bid)
{
	io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
			      (unsigned short)bid, io_uring_buf_ring_mask(NR_BUFS),
			      nr_returned);
	nr_returned++;
	nr_free++;
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, listen_fd));
}

static void arm_recv(int fd)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd));
	conns[fd].recv_armed = 1;
}

static void send_head(int fd)
{
	struct conn *c = &conns[fd];
	int bid = c->head;
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_send(sqe, fd, bufs + (size_t)bid * BUF_SIZE + buf_off[bid],
			   (size_t)(buf_len[bid] - buf_off[bid]), MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd));
	c->sending = 1;
}

/* Close the fd once nothing in the kernel refers to it any more. */
static void maybe_close(int fd)
{
	struct conn *c = &conns[fd];

	if (c->recv_armed || c->sending || c->stalled)
		return;
	while (c->head >= 0) { /* unsent data of a dead connection */
		int bid = c->head;
		c->head = buf_next[bid];
		recycle(bid);
	}
	close(fd);
	memset(c, 0, sizeof(*c));
}

/* Error on the connection: drop queued data and make the recv terminate. */
static void kill_conn(int fd)
{
	struct conn *c = &conns[fd];
	int keep = c->sending ? c->head : -1; /* in flight: recycled on its CQE */
	int bid;

	c->dead = 1;
	bid = c->sending ? buf_next[c->head] : c->head;
	while (bid >= 0) {
		int next = buf_next[bid];
		recycle(bid);
		bid = next;
	}
	c->head = c->tail = keep;
	if (keep >= 0)
		buf_next[keep] = -1;
	if (c->recv_armed || c->sending)
		shutdown(fd, SHUT_RDWR); /* recv completes with 0, send fails */
}

static void on_accept(struct io_uring_cqe *cqe)
{
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		arm_accept();
	if (fd < 0) {
		if (fd == -EINVAL)
			die("multishot accept", -fd);
		return; /* e.g. -EMFILE: keep going */
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct conn *c = conn_get(fd);
	memset(c, 0, sizeof(*c));
	c->open = 1;
	c->head = c->tail = -1;
	arm_recv(fd);
}

static void on_recv(struct io_uring_cqe *cqe, int fd)
{
	struct conn *c = &conns[fd];
	int res = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->recv_armed = 0;

	if (res > 0) {
		int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

		nr_free--;
		if (c->dead) {
			recycle(bid);
		} else {
			buf_len[bid] = res;
			buf_off[bid] = 0;
			buf_next[bid] = -1;
			if (c->tail >= 0)
				buf_next[c->tail] = bid;
			else
				c->head = bid;
			c->tail = bid;
			if (!c->sending)
				send_head(fd);
		}
		if (!c->recv_armed && !c->dead)
			arm_recv(fd);
		else if (!c->recv_armed)
			maybe_close(fd);
	} else if (res == -ENOBUFS && !c->dead) {
		/* out of buffers: park until some come back */
		c->stalled = 1;
		c->stall_next = stalled_head;
		stalled_head = fd;
	} else {
		/* 0 = EOF (queued data still gets sent), < 0 = error */
		if (res < 0 && !c->dead)
			kill_conn(fd);
		maybe_close(fd);
	}
}

static void on_send(struct io_uring_cqe *cqe, int fd)
{
	struct conn *c = &conns[fd];
	int bid = c->head;
	int res = cqe->res;

	c->sending = 0;
	if (c->dead || res <= 0) {
		c->head = buf_next[bid];
		if (c->head < 0)
			c->tail = -1;
		recycle(bid);
		if (!c->dead)
			kill_conn(fd);
		maybe_close(fd);
		return;
	}
	buf_off[bid] += res;
	if (buf_off[bid] < buf_len[bid]) { /* short send: push the rest */
		send_head(fd);
		return;
	}
	c->head = buf_next[bid];
	if (c->head < 0)
		c->tail = -1;
	recycle(bid);
	if (c->head >= 0)
		send_head(fd);
	else if (!c->recv_armed)
		maybe_close(fd); /* EOF seen and everything echoed */
}

static void rearm_stalled(void)
{
	int fd = stalled_head;

	stalled_head = -1;
	while (fd >= 0) {
		struct conn *c = &conns[fd];
		int next = c->stall_next;

		c->stalled = 0;
		if (c->dead)
			maybe_close(fd);
		else
			arm_recv(fd);
		fd = next;
	}
}

static int setup_ring(int defer)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = QUEUE_DEPTH * 2;
	if (defer) {
		p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
		ret = io_uring_queue_init_params(QUEUE_DEPTH, &ring, &p);
		if (ret != -EINVAL)
			return ret;
		fprintf(stderr, "uring_echo: SINGLE_ISSUER|DEFER_TASKRUN rejected, "
			"using a plain ring\n");
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = QUEUE_DEPTH * 2;
	}
	return io_uring_queue_init_params(QUEUE_DEPTH, &ring, &p);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	const char *port = NULL;
	int defer = 1, sfd, one = 1, ret, running = 1;
	sigset_t mask;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-defer"))
			defer = 0;
		else if (!port && argv[i][0] != '-')
			port = argv[i];
		else
			port = NULL, i = argc;
	}
	if (!port) {
		fprintf(stderr, "usage: %s [--no-defer] PORT\n", argv[0]);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		die("sigprocmask", errno);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd", errno);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd < 0)
		die("socket", errno);
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((unsigned short)atoi(port));
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("bind", errno);
	if (listen(listen_fd, SOMAXCONN) < 0)
		die("listen", errno);
	if (getsockname(listen_fd, (struct sockaddr *)&addr, &alen) < 0)
		die("getsockname", errno);

	ret = setup_ring(defer);
	if (ret < 0)
		die("io_uring_queue_init_params", -ret);

	br = io_uring_setup_buf_ring(&ring, NR_BUFS, BGID, 0, &ret);
	if (!br)
		die("io_uring_setup_buf_ring", -ret);
	bufs = aligned_alloc(4096, (size_t)NR_BUFS * BUF_SIZE);
	if (!bufs)
		die("aligned_alloc", ENOMEM);
	for (int i = 0; i < NR_BUFS; i++)
		recycle(i);
	io_uring_buf_ring_advance(br, nr_returned);
	nr_returned = 0;

	arm_accept();
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_poll_add(sqe, sfd, POLLIN);
	io_uring_sqe_set_data64(sqe, ud(OP_SIGNAL, sfd));

	printf("listening %d\n", ntohs(addr.sin_port));
	fflush(stdout);

	while (running) {
		struct io_uring_cqe *cqe;
		unsigned head, count = 0;

		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR)
			die("io_uring_submit_and_wait", -ret);

		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t data = io_uring_cqe_get_data64(cqe);
			int fd = (int)(uint32_t)data;

			switch (data >> 32) {
			case OP_ACCEPT: on_accept(cqe); break;
			case OP_RECV:   on_recv(cqe, fd); break;
			case OP_SEND:   on_send(cqe, fd); break;
			case OP_SIGNAL: running = 0; break;
			}
			count++;
		}
		io_uring_cq_advance(&ring, count);

		if (nr_returned) {
			io_uring_buf_ring_advance(br, nr_returned);
			nr_returned = 0;
			if (stalled_head >= 0 && nr_free >= REARM_FREE)
				rearm_stalled();
		}
	}

	io_uring_free_buf_ring(&ring, br, NR_BUFS, BGID);
	io_uring_queue_exit(&ring);
	for (int fd = 0; fd < nconns_cap; fd++)
		if (conns[fd].open)
			close(fd);
	free(conns);
	free(bufs);
	close(listen_fd);
	close(sfd);
	return 0;
}
