/* test_msgconn.c - framed connections, the event loop, the socket helpers and
 * the small utilities, over real sockets (socketpair, loopback TCP, a unix socket).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_AREA "test"
#include "common/common.h"

static struct wire_msg m, got;

static void pair(struct msgconn **a, struct msgconn **b)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*a = msgconn_new(sv[0], "a");
	*b = msgconn_new(sv[1], "b");
	assert_non_null(*a);
	assert_non_null(*b);
}

static void make_status(struct wire_msg *s, uint32_t n)
{
	memset(s, 0, sizeof(*s));
	s->cmd = WIRE_STATUS_REPLY;
	s->status.n_nodes = n;
	s->status.n_clients = n;
	for (uint32_t i = 0; i < n; i++) {
		s->status.nodes[i].id = i + 1;
		s->status.nodes[i].total_pages = (uint64_t)i << 20;
		s->status.clients[i].client = i;
		snprintf(s->status.clients[i].name, CONFIG_NAME_LEN, "client-%u", i);
	}
}

static void test_send_recv(void **state)
{
	struct msgconn *a, *b;

	pair(&a, &b);
	assert_string_equal(msgconn_peer(a), "a");
	wire_hello(&m, 17, ROLE_DONOR);
	assert_int_equal(msgconn_send(a, &m), 0);
	make_status(&m, WIRE_MAX_NODES);
	assert_int_equal(msgconn_send(a, &m), 0);
	msgconn_send_error(a, -ENOSPC, "donor %d has %s", 3, "no slabs");

	assert_int_equal(msgconn_recv(b, &got, 1000), 0);
	assert_int_equal(got.cmd, WIRE_HELLO);
	assert_int_equal(got.hello.node_id, 17);
	assert_int_equal(wire_check_hello(&got), 0);
	assert_int_equal(msgconn_recv(b, &got, 1000), 0);
	assert_memory_equal(&got, &m, sizeof(m));
	assert_int_equal(msgconn_recv(b, &got, 1000), 0);
	assert_int_equal(got.cmd, WIRE_ERROR);
	assert_int_equal(got.error.code, ENOSPC);
	assert_string_equal(got.error.text, "donor 3 has no slabs");

	/* nothing more: times out; then EOF after the peer closes */
	assert_int_equal(msgconn_recv(b, &got, 20), -ETIMEDOUT);
	msgconn_free(a);
	assert_int_equal(msgconn_recv(b, &got, 1000), -ECONNRESET);
	msgconn_free(b);
	msgconn_free(NULL);
}

/* A frame that arrives one byte at a time is buffered until whole; a bad frame
 * after it is reported. */
static void test_partial_and_bad(void **state)
{
	struct msgconn *a, *b;
	uint8_t frame[64];
	int len;

	pair(&a, &b);
	memset(&m, 0, sizeof(m));
	m.cmd = WIRE_GRANT_FWD;
	m.grant_fwd.donor = 2;
	m.grant_fwd.to = 9;
	m.grant_fwd.pages = 123456;
	len = wire_encode(&m, frame, sizeof(frame));
	assert_true(len > 0);
	for (int i = 0; i < len; i++) {
		assert_int_equal(msgconn_next(b, &got), 0);
		assert_int_equal(write(msgconn_fd(a), frame + i, 1), 1);
		assert_int_equal(msgconn_fill(b), 0);
	}
	assert_int_equal(msgconn_next(b, &got), 1);
	assert_true(got.grant_fwd.pages == 123456);
	assert_int_equal(msgconn_next(b, &got), 0);

	wire_put16(frame + 6, 1); /* flags */
	assert_int_equal(write(msgconn_fd(a), frame, (size_t)len), len);
	assert_int_equal(msgconn_recv(b, &got, 1000), -EPROTO);
	msgconn_free(a);
	msgconn_free(b);
}

/* Many frames written faster than read: the sender waits, the reader's buffer
 * wraps around, and every frame arrives intact and in order. */
static void test_many_frames(void **state)
{
	struct msgconn *a, *b;
	pid_t pid;
	int status;

	pair(&a, &b);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (uint32_t i = 0; i < 2000; i++) {
			make_status(&m, i % (WIRE_MAX_NODES + 1));
			if (msgconn_send(a, &m))
				_exit(1);
		}
		_exit(0);
	}
	for (uint32_t i = 0; i < 2000; i++) {
		assert_int_equal(msgconn_recv(b, &got, 5000), 0);
		assert_int_equal(got.status.n_nodes, i % (WIRE_MAX_NODES + 1));
		if (got.status.n_nodes) {
			char want[CONFIG_NAME_LEN];

			snprintf(want, sizeof(want), "client-%u", got.status.n_nodes - 1);
			assert_string_equal(got.status.clients[got.status.n_nodes - 1].name,
					    want);
		}
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	msgconn_free(a);
	msgconn_free(b);
}

struct loop_state {
	struct msgconn *b;
	int msgs, ticks, oneshots, signals;
	int tick_id;
};

static void on_readable(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct loop_state *s = arg;
	int rc = msgconn_fill(s->b);

	while (msgconn_next(s->b, &got) == 1)
		s->msgs++;
	if (rc == -ECONNRESET) {
		/* delete ourselves from inside our callback, then close */
		assert_int_equal(evloop_del_fd(ev, fd), 0);
		assert_int_equal(evloop_del_fd(ev, fd), -ENOENT);
	}
}

static void on_tick(struct evloop *ev, void *arg)
{
	struct loop_state *s = arg;

	if (++s->ticks == 3)
		assert_int_equal(evloop_del_timer(ev, s->tick_id), 0);
}

static void on_oneshot(struct evloop *ev, void *arg)
{
	((struct loop_state *)arg)->oneshots++;
	raise(SIGUSR1);
}

static void on_signal(struct evloop *ev, int fd, uint32_t signo, void *arg)
{
	struct loop_state *s = arg;

	assert_int_equal(signo, SIGUSR1);
	s->signals++;
	evloop_stop(ev);
}

static void test_evloop(void **state)
{
	struct loop_state s = { 0 };
	struct msgconn *a;
	struct evloop *ev = evloop_new();
	uint64_t t0 = evloop_now_ms();

	assert_non_null(ev);
	pair(&a, &s.b);
	assert_int_equal(evloop_add_fd(ev, msgconn_fd(s.b), EPOLLIN, on_readable, &s), 0);
	assert_int_equal(evloop_add_fd(ev, msgconn_fd(s.b), EPOLLIN, on_readable, &s),
			 -EEXIST);
	assert_int_equal(evloop_mod_fd(ev, msgconn_fd(s.b), EPOLLIN | EPOLLRDHUP), 0);
	s.tick_id = evloop_add_timer(ev, 10, true, on_tick, &s);
	assert_true(s.tick_id > 0);
	assert_true(evloop_add_timer(ev, 80, false, on_oneshot, &s) > 0);
	int dead = evloop_add_timer(ev, 5, false, on_oneshot, &s);
	assert_int_equal(evloop_del_timer(ev, dead), 0);
	assert_int_equal(evloop_on_signal(ev, SIGUSR1, on_signal, &s), 0);

	for (int i = 0; i < 5; i++) {
		wire_hello(&m, (uint32_t)i + 1, ROLE_BORROWER);
		assert_int_equal(msgconn_send(a, &m), 0);
	}
	msgconn_free(a); /* EOF after the messages */

	assert_int_equal(evloop_run(ev), 0);
	assert_int_equal(s.msgs, 5);
	assert_int_equal(s.ticks, 3);
	assert_int_equal(s.oneshots, 1);
	assert_int_equal(s.signals, 1);
	assert_true(evloop_now_ms() - t0 >= 80);
	evloop_free(ev);
	msgconn_free(s.b);
}

static void test_net(void **state)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	char upath[64], data[8] = "fd-pass", back[8];
	int lfd, cfd, sfd, sv[2], pfd[2], passed;

	/* loopback TCP on an ephemeral port */
	lfd = net_listen_tcp("127.0.0.1", 0);
	assert_true(lfd >= 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	cfd = net_connect_tcp("localhost", ntohs(sin.sin_port), 1000);
	assert_true(cfd >= 0);
	sfd = accept(lfd, NULL, NULL);
	assert_true(sfd >= 0);
	assert_int_equal(net_write_full(cfd, "hello", 5), 0);
	assert_int_equal(net_read_full(sfd, back, 5), 0);
	assert_memory_equal(back, "hello", 5);
	close(cfd);
	assert_int_equal(net_read_full(sfd, back, 1), -ECONNRESET);
	close(sfd);
	close(lfd);
	assert_true(net_connect_tcp("no-such-host.invalid", 1, 100) < 0);

	/* unix socket: stale socket file is replaced, a live one is not */
	snprintf(upath, sizeof(upath), "/tmp/rtmem-test-%d.sock", (int)getpid());
	lfd = net_listen_unix(upath);
	assert_true(lfd >= 0);
	assert_int_equal(net_listen_unix(upath), -EADDRINUSE);
	close(lfd);
	lfd = net_listen_unix(upath);
	assert_true(lfd >= 0);
	cfd = net_connect_unix(upath);
	assert_true(cfd >= 0);
	close(cfd);
	close(lfd);
	unlink(upath);
	assert_true(net_connect_unix(upath) < 0);
	assert_int_equal(net_listen_unix("/tmp/" "a-path-that-is-far-too-long-for-sun_path-"
					 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
					 "xxxxxxxxxxxxxxxxxx.sock"),
			 -ENAMETOOLONG);

	/* SCM_RIGHTS: pass a pipe's write end, write through it, read at home */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(net_send_fd(sv[0], pfd[1], data, sizeof(data)), 0);
	assert_int_equal(net_recv_fd(sv[1], &passed, back, sizeof(back)), 0);
	assert_memory_equal(back, data, sizeof(data));
	assert_true(passed >= 0 && passed != pfd[1]);
	assert_int_equal(write(passed, "xyz", 3), 3);
	assert_int_equal(net_read_full(pfd[0], back, 3), 0);
	assert_memory_equal(back, "xyz", 3);
	close(passed);
	/* no fd attached */
	assert_int_equal(net_send_fd(sv[0], -1, data, sizeof(data)), 0);
	assert_int_equal(net_recv_fd(sv[1], &passed, back, sizeof(back)), 0);
	assert_int_equal(passed, -1);
	close(sv[0]);
	assert_int_equal(net_recv_fd(sv[1], &passed, back, sizeof(back)), -ECONNRESET);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
}

static void test_util(void **state)
{
	/* FNV-1a 64 reference values */
	assert_true(rtm_checksum("", 0) == 0xcbf29ce484222325ull);
	assert_true(rtm_checksum("a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(rtm_checksum("foobar", 6) == 0x85944171f73967e8ull);
	assert_true(rtm_random64() != rtm_random64());

	/* RTMEM_FAULT was set in main(), before the first rtm_fault() */
	assert_true(rtm_fault("twice"));
	assert_true(rtm_fault("twice"));
	assert_false(rtm_fault("twice"));
	assert_true(rtm_fault("always"));
	assert_true(rtm_fault("always"));
	assert_false(rtm_fault("bad"));
	assert_false(rtm_fault("other"));

	log_init("/usr/bin/test_msgconn", LOG_WARN);
	assert_true(log_enabled(LOG_ERROR, "x"));
	assert_false(log_enabled(LOG_INFO, "x"));
	log_err("a logged error with a %s", "value");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_recv),
		cmocka_unit_test(test_partial_and_bad),
		cmocka_unit_test(test_many_frames),
		cmocka_unit_test(test_evloop),
		cmocka_unit_test(test_net),
		cmocka_unit_test(test_util),
	};

	signal(SIGPIPE, SIG_IGN);
	setenv("RTMEM_FAULT", "twice:2,always,bad:x", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
