/* evloop.c - a single-threaded event loop: epoll for fds, a list of timers whose
 * nearest deadline becomes the epoll_wait timeout, and signals through one
 * signalfd. Removal from inside callbacks is safe: removed entries are only
 * marked dead and freed after the current dispatch round.
 */
#define LOG_AREA "evloop"
#include "common/common.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define EVLOOP_MAX_EVENTS 64
#define EVLOOP_NSIG 65

struct ev_fd {
	struct ev_fd *next;
	int fd;
	bool dead;
	evloop_fd_cb cb;
	void *arg;
};

struct ev_timer {
	struct ev_timer *next;
	int id;
	bool dead;
	unsigned period_ms;   /* 0 = one-shot */
	uint64_t due_ms;
	evloop_timer_cb cb;
	void *arg;
};

struct evloop {
	int epfd;
	int sigfd;
	bool stop;
	int next_timer_id;
	struct ev_fd *fds;
	struct ev_timer *timers;
	sigset_t sigmask;     /* signals routed to the signalfd */
	struct {
		evloop_fd_cb cb;
		void *arg;
	} sig[EVLOOP_NSIG];
};

uint64_t evloop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct evloop *evloop_new(void)
{
	struct evloop *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0) {
		log_err("epoll_create1: %s", strerror(errno));
		free(ev);
		return NULL;
	}
	ev->sigfd = -1;
	sigemptyset(&ev->sigmask);
	return ev;
}

static struct ev_fd *find_fd(struct evloop *ev, int fd)
{
	for (struct ev_fd *e = ev->fds; e; e = e->next)
		if (e->fd == fd && !e->dead)
			return e;
	return NULL;
}

int evloop_add_fd(struct evloop *ev, int fd, uint32_t events, evloop_fd_cb cb, void *arg)
{
	struct epoll_event ee = { .events = events };
	struct ev_fd *e;

	if (fd < 0 || !cb)
		return -EINVAL;
	if (find_fd(ev, fd))
		return -EEXIST;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	*e = (struct ev_fd){ .next = ev->fds, .fd = fd, .cb = cb, .arg = arg };
	ee.data.ptr = e;
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
		int rc = -errno;

		free(e);
		return rc;
	}
	ev->fds = e;
	return 0;
}

int evloop_mod_fd(struct evloop *ev, int fd, uint32_t events)
{
	struct ev_fd *e = find_fd(ev, fd);
	struct epoll_event ee = { .events = events };

	if (!e)
		return -ENOENT;
	ee.data.ptr = e;
	return epoll_ctl(ev->epfd, EPOLL_CTL_MOD, fd, &ee) < 0 ? -errno : 0;
}

int evloop_del_fd(struct evloop *ev, int fd)
{
	struct ev_fd *e = find_fd(ev, fd);

	if (!e)
		return -ENOENT;
	e->dead = true;
	/* the fd may already be closed by the caller: that removed it from epoll */
	if (epoll_ctl(ev->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

int evloop_add_timer(struct evloop *ev, unsigned ms, bool periodic, evloop_timer_cb cb,
		     void *arg)
{
	struct ev_timer *t;

	if (!cb || (periodic && !ms))
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (ev->next_timer_id == INT32_MAX)
		ev->next_timer_id = 0;
	*t = (struct ev_timer){ .next = ev->timers, .id = ++ev->next_timer_id,
				.period_ms = periodic ? ms : 0,
				.due_ms = evloop_now_ms() + ms, .cb = cb, .arg = arg };
	ev->timers = t;
	return t->id;
}

int evloop_del_timer(struct evloop *ev, int id)
{
	for (struct ev_timer *t = ev->timers; t; t = t->next) {
		if (t->id == id && !t->dead) {
			t->dead = true;
			return 0;
		}
	}
	return -ENOENT;
}

static void signal_dispatch(struct evloop *ev, int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo < EVLOOP_NSIG && ev->sig[si.ssi_signo].cb)
			ev->sig[si.ssi_signo].cb(ev, fd, si.ssi_signo,
						 ev->sig[si.ssi_signo].arg);
	}
}

/* evloop_on_signal blocks @signo in the calling thread (for good: also after
 * evloop_free); call it before creating threads so that they inherit the mask. */
int evloop_on_signal(struct evloop *ev, int signo, evloop_fd_cb cb, void *arg)
{
	int fd;

	if (signo <= 0 || signo >= EVLOOP_NSIG || !cb)
		return -EINVAL;
	sigaddset(&ev->sigmask, signo);
	if (pthread_sigmask(SIG_BLOCK, &ev->sigmask, NULL))
		return -EINVAL;
	fd = signalfd(ev->sigfd, &ev->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ev->sigfd < 0) {
		int rc = evloop_add_fd(ev, fd, EPOLLIN, signal_dispatch, NULL);

		if (rc) {
			close(fd);
			return rc;
		}
		ev->sigfd = fd;
	}
	ev->sig[signo].cb = cb;
	ev->sig[signo].arg = arg;
	return 0;
}

/* next_timeout - ms until the nearest live timer, -1 if none. */
static int next_timeout(struct evloop *ev)
{
	uint64_t now = evloop_now_ms(), best = UINT64_MAX;

	for (struct ev_timer *t = ev->timers; t; t = t->next)
		if (!t->dead && t->due_ms < best)
			best = t->due_ms;
	if (best == UINT64_MAX)
		return -1;
	if (best <= now)
		return 0;
	return best - now > INT32_MAX ? INT32_MAX : (int)(best - now);
}

static void run_timers(struct evloop *ev)
{
	uint64_t now = evloop_now_ms();

	/* new timers are pushed at the head, so walking on from @t is safe */
	for (struct ev_timer *t = ev->timers; t && !ev->stop; t = t->next) {
		if (t->dead || t->due_ms > now)
			continue;
		if (t->period_ms) {
			t->due_ms += t->period_ms;
			if (t->due_ms <= now) /* fell behind: do not fire in a burst */
				t->due_ms = now + t->period_ms;
		} else {
			t->dead = true;
		}
		t->cb(ev, t->arg);
	}
}

/* reap - free entries marked dead; only between dispatch rounds. */
static void reap(struct evloop *ev)
{
	for (struct ev_fd **pe = &ev->fds; *pe;) {
		struct ev_fd *e = *pe;

		if (e->dead) {
			*pe = e->next;
			free(e);
		} else {
			pe = &e->next;
		}
	}
	for (struct ev_timer **pt = &ev->timers; *pt;) {
		struct ev_timer *t = *pt;

		if (t->dead) {
			*pt = t->next;
			free(t);
		} else {
			pt = &t->next;
		}
	}
}

int evloop_run(struct evloop *ev)
{
	struct epoll_event evs[EVLOOP_MAX_EVENTS];

	ev->stop = false;
	while (!ev->stop) {
		int n = epoll_wait(ev->epfd, evs, EVLOOP_MAX_EVENTS, next_timeout(ev));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n && !ev->stop; i++) {
			struct ev_fd *e = evs[i].data.ptr;

			if (!e->dead)
				e->cb(ev, e->fd, evs[i].events, e->arg);
		}
		run_timers(ev);
		reap(ev);
	}
	return 0;
}

void evloop_stop(struct evloop *ev)
{
	ev->stop = true;
}

void evloop_free(struct evloop *ev)
{
	if (!ev)
		return;
	for (struct ev_fd *e = ev->fds; e; e = e->next)
		e->dead = true;
	for (struct ev_timer *t = ev->timers; t; t = t->next)
		t->dead = true;
	reap(ev);
	/* signals stay blocked: unblocking could deliver a pending SIGTERM */
	if (ev->sigfd >= 0)
		close(ev->sigfd);
	close(ev->epfd);
	free(ev);
}
