/*
 * waitset.c - owns wait sets: blocking on many subscribers and topic
 * watches at once, through the one wait loop (wait.c), and their event
 * descriptor.
 */
#include <stdlib.h>
#include <string.h>

#include "handles.h"

struct member {
	shmbus_sub *sub;            /* one of the two */
	shmbus_topic_watch *watch;
};

struct shmbus_waitset {
	struct member m[SHMBUS_WAITSET_MAX];
	size_t n;
	struct wait_intr intr;
	struct fdwatch *fw;
};

int shmbus_waitset_create(shmbus_waitset **out)
{
	err_clear();
	if (!out)
		return err_fail(SHMBUS_EINVAL, "shmbus_waitset_create: out is NULL");
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : err_fail(SHMBUS_ENOMEM, "out of memory for a wait set");
}

static void unlink_member(shmbus_waitset *ws, struct member *m)
{
	if (!ws->fw)
		return;
	if (m->sub && m->sub->fd_set == ws) {
		m->sub->fd_set = NULL;
		m->sub->fw = m->sub->own_fw;
	}
	if (m->watch && m->watch->fd_set == ws) {
		m->watch->fd_set = NULL;
		m->watch->fw = m->watch->own_fw;
	}
}

void shmbus_waitset_destroy(shmbus_waitset *ws)
{
	if (!ws)
		return;
	for (size_t i = 0; i < ws->n; i++)
		unlink_member(ws, &ws->m[i]);
	fdwatch_stop(ws->fw);
	free(ws);
}

/* A member joining a set with a descriptor re-arms the set's, not its own. */
static int link_member(shmbus_waitset *ws, struct member *m)
{
	if (!ws->fw)
		return 0;
	if (m->sub) {
		if (m->sub->own_fw || m->sub->fd_set)
			return err_fail(SHMBUS_EINVAL,
					"subscriber of '%s' has an event descriptor already",
					m->sub->map->layout.name);
		m->sub->fd_set = ws;
		m->sub->fw = ws->fw;
	} else {
		if (m->watch->own_fw || m->watch->fd_set)
			return err_fail(SHMBUS_EINVAL,
					"topic watch has an event descriptor already");
		m->watch->fd_set = ws;
		m->watch->fw = ws->fw;
	}
	fdwatch_rearm(ws->fw);
	return 0;
}

static int add_member(shmbus_waitset *ws, struct member m)
{
	err_clear();
	if (!ws || (!m.sub && !m.watch))
		return err_fail(SHMBUS_EINVAL, "shmbus_waitset_add: NULL argument");
	for (size_t i = 0; i < ws->n; i++)
		if (ws->m[i].sub == m.sub && ws->m[i].watch == m.watch)
			return 0;
	if (ws->n == SHMBUS_WAITSET_MAX)
		return err_fail(SHMBUS_ELIMIT, "a wait set holds at most %d members",
				SHMBUS_WAITSET_MAX);
	ws->m[ws->n++] = m;
	int rc = link_member(ws, &ws->m[ws->n - 1]);
	if (rc)
		ws->n--;
	return rc;
}

static int remove_member(shmbus_waitset *ws, struct member m)
{
	err_clear();
	if (!ws || (!m.sub && !m.watch))
		return err_fail(SHMBUS_EINVAL, "shmbus_waitset_remove: NULL argument");
	for (size_t i = 0; i < ws->n; i++) {
		if (ws->m[i].sub == m.sub && ws->m[i].watch == m.watch) {
			unlink_member(ws, &ws->m[i]);
			ws->m[i] = ws->m[--ws->n];
			if (ws->fw)
				fdwatch_rearm(ws->fw);
			return 0;
		}
	}
	return err_fail(SHMBUS_EINVAL, "not a member of this wait set");
}

int shmbus_waitset_add(shmbus_waitset *ws, shmbus_sub *sub)
{
	return add_member(ws, (struct member){ .sub = sub });
}

int shmbus_waitset_add_watch(shmbus_waitset *ws, shmbus_topic_watch *watch)
{
	return add_member(ws, (struct member){ .watch = watch });
}

int shmbus_waitset_remove(shmbus_waitset *ws, shmbus_sub *sub)
{
	return remove_member(ws, (struct member){ .sub = sub });
}

int shmbus_waitset_remove_watch(shmbus_waitset *ws, shmbus_topic_watch *watch)
{
	return remove_member(ws, (struct member){ .watch = watch });
}

static size_t collect_ready(shmbus_waitset *ws, shmbus_sub **ready, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < ws->n; i++)
		if (ws->m[i].sub && ring_ready(&ws->m[i].sub->r)) {
			if (k < cap)
				ready[k] = ws->m[i].sub;
			k++;
		}
	return k;
}

int shmbus_waitset_wait(shmbus_waitset *ws, int64_t timeout_ns, shmbus_sub **ready,
			size_t capacity, size_t *n_ready)
{
	struct wait_src src[SHMBUS_WAITSET_MAX];
	int which;

	err_clear();
	if (!ws || !n_ready || (capacity && !ready))
		return err_fail(SHMBUS_EINVAL, "shmbus_waitset_wait: NULL argument");
	*n_ready = 0;
	if (ws->n == 0)
		return err_fail(SHMBUS_EINVAL, "the wait set is empty");
	for (size_t i = 0; i < ws->n; i++) {
		if (ws->m[i].sub)
			ring_wait_src(&ws->m[i].sub->r, &src[i]);
		else
			watch_wait_src(ws->m[i].watch, &src[i]);
	}
	int rc = wait_sources(src, ws->n, &ws->intr, NULL, 0, timeout_ns, 0, &which);
	if (rc)
		return rc;
	size_t k = collect_ready(ws, ready, capacity);
	*n_ready = k < capacity ? k : capacity;
	return 0;
}

void shmbus_waitset_interrupt(shmbus_waitset *ws)
{
	if (ws)
		wait_intr_raise(&ws->intr);
}

static void set_snapshot(void *owner, struct probe *probes, size_t *n)
{
	shmbus_waitset *ws = owner;
	for (size_t i = 0; i < ws->n; i++) {
		if (ws->m[i].sub)
			sub_probe(ws->m[i].sub, &probes[i]);
		else
			watch_probe(ws->m[i].watch, &probes[i]);
	}
	*n = ws->n;
}

int shmbus_waitset_fd(shmbus_waitset *ws, int *fd)
{
	err_clear();
	if (!ws || !fd)
		return err_fail(SHMBUS_EINVAL, "shmbus_waitset_fd: NULL argument");
	if (!ws->fw) {
		for (size_t i = 0; i < ws->n; i++) {
			struct member *m = &ws->m[i];
			if ((m->sub && (m->sub->own_fw || m->sub->fd_set)) ||
			    (m->watch && (m->watch->own_fw || m->watch->fd_set)))
				return err_fail(SHMBUS_EINVAL,
						"a member of the wait set has an event descriptor "
						"already");
		}
		int rc = fdwatch_start(&ws->fw, set_snapshot, ws);
		if (rc)
			return rc;
		for (size_t i = 0; i < ws->n; i++)
			link_member(ws, &ws->m[i]);
	}
	*fd = ws->fw->efd;
	return 0;
}
