/*
 * watch.c - owns what a client learns of the bus's topics: the list, and
 * topic watches, which turn the bus page's generation (moved on by the
 * broker whenever a topic is created or removed) into created/removed
 * events by comparing the broker's list with the last one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handles.h"

/* Ask the broker for its list; fn for each entry. */
static int list_entries(shmbus_bus *bus, int (*fn)(void *ctx, const struct proto_entry *e),
			void *ctx)
{
	struct proto_buf b = { 0 };
	struct reply rep;
	size_t f = proto_frame_begin(&b, OP_LIST, 0);
	proto_frame_end(&b, f);
	int rc = bus_request(bus, &b, &rep);
	proto_buf_free(&b);
	if (rc)
		return rc;
	rc = proto_decode_entries(rep.body, rep.hdr.len, fn, ctx);
	if (rc == SHMBUS_EBROKER)
		err_set("broker sent a malformed topic list");
	reply_free(&rep);
	return rc;
}

struct list_ctx {
	int (*fn)(void *ctx, const char *topic, const char *type_name);
	void *ctx;
};

static int list_one(void *ctx, const struct proto_entry *e)
{
	struct list_ctx *l = ctx;
	return l->fn(l->ctx, e->name, e->type_name);
}

int shmbus_list_topics(shmbus_bus *bus,
		       int (*fn)(void *ctx, const char *topic, const char *type_name), void *ctx)
{
	err_clear();
	if (!bus || !fn)
		return err_fail(SHMBUS_EINVAL, "shmbus_list_topics: NULL argument");
	struct list_ctx l = { fn, ctx };
	return list_entries(bus, list_one, &l);
}

/* ------------------------------------------------------------ the watch */

static int refresh(shmbus_topic_watch *w);

int shmbus_topic_watch_open(shmbus_bus *bus, shmbus_topic_watch **out)
{
	err_clear();
	if (!bus || !out)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_watch_open: NULL argument");
	*out = NULL;
	shmbus_topic_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return err_fail(SHMBUS_ENOMEM, "out of memory for a topic watch");
	w->bus = bus;
	/* The first list: every topic that exists now becomes an event. */
	int rc = refresh(w);
	if (rc) {
		shmbus_topic_watch_close(w);
		return rc;
	}
	*out = w;
	return 0;
}

void shmbus_topic_watch_close(shmbus_topic_watch *w)
{
	if (!w)
		return;
	if (w->fd_set)
		shmbus_waitset_remove_watch(w->fd_set, w);
	fdwatch_stop(w->own_fw);
	free(w->known);
	free(w->queue);
	free(w);
}

static int push_event(shmbus_topic_watch *w, enum shmbus_topic_event_kind kind,
		      const struct known_topic *t)
{
	if (w->q_len == w->q_cap) {
		size_t cap = w->q_cap ? w->q_cap * 2 : 16;
		struct shmbus_topic_event *q = malloc(cap * sizeof(*q));
		if (!q)
			return err_fail(SHMBUS_ENOMEM, "out of memory for topic events");
		for (size_t i = 0; i < w->q_len; i++)
			q[i] = w->queue[(w->q_head + i) % w->q_cap];
		free(w->queue);
		w->queue = q;
		w->q_cap = cap;
		w->q_head = 0;
	}
	struct shmbus_topic_event *e = &w->queue[(w->q_head + w->q_len) % w->q_cap];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	snprintf(e->name, sizeof(e->name), "%s", t->name);
	snprintf(e->type_name, sizeof(e->type_name), "%s", t->type_name);
	w->q_len++;
	return 0;
}

struct fresh {
	struct known_topic *v;
	size_t n, cap;
};

static int collect(void *ctx, const struct proto_entry *e)
{
	struct fresh *f = ctx;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct known_topic *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return err_fail(SHMBUS_ENOMEM, "out of memory for the topic list");
		f->v = v;
		f->cap = cap;
	}
	struct known_topic *t = &f->v[f->n++];
	t->id = e->topic_id;
	memcpy(t->name, e->name, sizeof(t->name));
	memcpy(t->type_name, e->type_name, sizeof(t->type_name));
	return 0;
}

/* A topic is the same one if its id and name are: a topic removed and
 * created again gets a new id, so it shows as removed, then created. */
static bool same_topic(const struct known_topic *a, const struct known_topic *b)
{
	return a->id == b->id && strcmp(a->name, b->name) == 0;
}

static bool contains(const struct known_topic *v, size_t n, const struct known_topic *t)
{
	for (size_t i = 0; i < n; i++)
		if (same_topic(&v[i], t))
			return true;
	return false;
}

/* Ask for the list again and queue what changed since the last one. */
static int refresh(shmbus_topic_watch *w)
{
	const struct bus_page *page = bus_page(w->bus);
	/* Acquire: the generation is read before the list is asked for, so
	 * a change during the request leaves it stale and asks again. */
	uint32_t gen = page ? atomic_load_explicit(&((struct bus_page *)page)->topics_gen,
						   memory_order_acquire)
			    : 0;
	struct fresh f = { 0 };
	int rc = list_entries(w->bus, collect, &f);
	if (rc) {
		free(f.v);
		return rc;
	}
	for (size_t i = 0; rc == 0 && i < w->n_known; i++)
		if (!contains(f.v, f.n, &w->known[i]))
			rc = push_event(w, SHMBUS_TOPIC_REMOVED, &w->known[i]);
	for (size_t i = 0; rc == 0 && i < f.n; i++)
		if (!contains(w->known, w->n_known, &f.v[i]))
			rc = push_event(w, SHMBUS_TOPIC_CREATED, &f.v[i]);
	if (rc) {
		free(f.v);
		return rc;
	}
	free(w->known);
	w->known = f.v;
	w->n_known = f.n;
	w->cap_known = f.cap;
	/* The request may have reconnected to a new broker: then the
	 * generation read belongs to the old page, and the next look asks
	 * again. */
	w->page = bus_page(w->bus);
	w->gen = gen;
	w->listed = w->page == page;
	return 0;
}

/* Whether the broker's list may differ from the last one. */
static bool stale(const shmbus_topic_watch *w, memory_order order)
{
	const struct bus_page *page = bus_page(w->bus);
	if (!w->listed || page != w->page)
		return true;
	return atomic_load_explicit(&((struct bus_page *)page)->topics_gen, order) != w->gen;
}

int shmbus_topic_watch_next(shmbus_topic_watch *w, struct shmbus_topic_event *ev)
{
	err_clear();
	if (!w || !ev)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_watch_next: NULL argument");
	if (w->q_len == 0 && stale(w, memory_order_acquire)) {
		int rc = refresh(w);
		if (rc)
			return rc;
	}
	if (w->q_len == 0) {
		if (w->fw)
			fdwatch_rearm(w->fw);
		return SHMBUS_EAGAIN;
	}
	*ev = w->queue[w->q_head];
	w->q_head = (w->q_head + 1) % w->q_cap;
	w->q_len--;
	return 0;
}

static bool watch_ready(void *obj, memory_order order)
{
	const shmbus_topic_watch *w = obj;
	return w->q_len > 0 || stale(w, order);
}

static _Atomic uint32_t *watch_announce(void *obj, uint32_t *value)
{
	shmbus_topic_watch *w = obj;
	/* The broker wakes on every change: nothing to announce. */
	*value = w->gen;
	return &((struct bus_page *)w->page)->topics_gen;
}

void watch_wait_src(shmbus_topic_watch *w, struct wait_src *s)
{
	*s = (struct wait_src){ .obj = w, .ready = watch_ready, .announce = watch_announce };
}

int shmbus_topic_watch_wait(shmbus_topic_watch *w, int64_t timeout_ns)
{
	struct wait_src s;
	int which;
	err_clear();
	if (!w)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_watch_wait: watch is NULL");
	watch_wait_src(w, &s);
	return wait_sources(&s, 1, &w->intr, NULL, 0, timeout_ns, 0, &which);
}

void shmbus_topic_watch_interrupt(shmbus_topic_watch *w)
{
	if (w)
		wait_intr_raise(&w->intr);
}

void watch_probe(const shmbus_topic_watch *w, struct probe *p)
{
	*p = (struct probe){ .kind = PROBE_BUS, .page = w->page, .gen = w->gen };
	if (w->q_len || !w->listed || bus_page(w->bus) != w->page)
		p->gen = w->gen - 1; /* ready at once: something to hand out */
}

static void watch_snapshot(void *owner, struct probe *probes, size_t *n)
{
	watch_probe(owner, &probes[0]);
	*n = 1;
}

int shmbus_topic_watch_fd(shmbus_topic_watch *w, int *fd)
{
	err_clear();
	if (!w || !fd)
		return err_fail(SHMBUS_EINVAL, "shmbus_topic_watch_fd: NULL argument");
	if (w->fd_set)
		return err_fail(SHMBUS_EINVAL,
				"the watch belongs to a wait set with a descriptor: use that one");
	if (!w->own_fw) {
		int rc = fdwatch_start(&w->own_fw, watch_snapshot, w);
		if (rc)
			return rc;
		w->fw = w->own_fw;
	}
	*fd = w->own_fw->efd;
	return 0;
}
