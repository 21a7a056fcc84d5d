/*
 * fdwatch.c - owns the threads behind event-loop descriptors (see
 * fdwatch.h for the states).
 */
#include "fdwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "errors.h"
#include "futex.h"
#include "ring.h"
#include "wait.h"

#define FW_ARMED 1u
#define FW_QUIT 2u
#define FW_GEN 4u
#define PROBE_MAX_NAP_NS 200000000ll

bool probe_ready(const struct probe *p, memory_order order)
{
	if (p->kind == PROBE_BUS)
		return atomic_load_explicit(&((struct bus_page *)p->page)->topics_gen, order) !=
		       p->gen;
	return ring_ready_at(p->map, p->seq, order);
}

static bool src_ready(void *obj, memory_order order)
{
	return probe_ready(obj, order);
}

/* A number handed out but not published for stall_ns: the owner's take
 * will skip it, so that is something to take too. */
static bool src_poll(void *obj)
{
	struct probe *p = obj;
	if (p->kind != PROBE_TOPIC)
		return false;
	if (ring_head(p->map) <= p->seq) {
		p->stall_since = 0;
		return false;
	}
	int64_t now = monotonic_ns();
	if (p->stall_since == 0)
		p->stall_since = now;
	return now - p->stall_since >= p->stall_ns;
}

static int64_t src_nap(void *obj)
{
	const struct probe *p = obj;
	/* As a subscriber's own wait (ring.c): stall checks, and a bounded
	 * sleep, as the wake board may be scribbled. */
	if (p->kind != PROBE_TOPIC)
		return -1;
	return p->stall_since && p->stall_ns / 4 < PROBE_MAX_NAP_NS ? p->stall_ns / 4
								    : PROBE_MAX_NAP_NS;
}

static _Atomic uint32_t *src_announce(void *obj, uint32_t *value)
{
	struct probe *p = obj;
	if (p->kind == PROBE_BUS) {
		*value = p->gen;
		return &((struct bus_page *)p->page)->topics_gen;
	}
	*value = ring_announce_sleep(p->map);
	return &p->map->wake->epoch;
}

static void *fdwatch_main(void *arg)
{
	struct fdwatch *fw = arg;
	struct probe probes[SHMBUS_WAITSET_MAX];
	struct wait_src src[SHMBUS_WAITSET_MAX];

	for (;;) {
		/* Acquire: pairs with the release store in fdwatch_rearm, so
		 * the snapshot read under the lock is the one armed. */
		uint32_t c = atomic_load_explicit(&fw->ctl, memory_order_acquire);
		if (c & FW_QUIT)
			break;
		if (!(c & FW_ARMED)) {
			futex_wait_shared(&fw->ctl, c, -1);
			continue;
		}
		pthread_mutex_lock(&fw->lock);
		size_t n = fw->n;
		memcpy(probes, fw->probes, n * sizeof(probes[0]));
		pthread_mutex_unlock(&fw->lock);
		/* From here on nothing older than generation c is looked at.
		 * seq_cst, with the syncer's store of syncing then load of
		 * copied (Dekker): either it sees this or we see it waiting. */
		atomic_store_explicit(&fw->copied, c / FW_GEN, memory_order_seq_cst);
		if (atomic_load_explicit(&fw->syncing, memory_order_seq_cst))
			futex_wake_all_shared(&fw->copied);
		for (size_t i = 0; i < n; i++)
			src[i] = (struct wait_src){ .obj = &probes[i],
						    .ready = src_ready,
						    .poll = src_poll,
						    .announce = src_announce,
						    .nap = src_nap };
		int which;
		int rc = wait_sources(src, n, NULL, &fw->ctl, c, -1, 0, &which);
		if (rc != SHMBUS_OK || which < 0)
			continue; /* re-armed, told to quit, or a system error */
		/* Disarm only if nobody re-armed meanwhile; then signal. */
		if (atomic_compare_exchange_strong_explicit(&fw->ctl, &c, c & ~FW_ARMED,
							    memory_order_acq_rel,
							    memory_order_relaxed)) {
			uint64_t one = 1;
			ssize_t w = write(fw->efd, &one, sizeof(one));
			(void)w; /* EAGAIN: the counter is already non-zero */
		}
	}
	return NULL;
}

static void drain(int efd)
{
	uint64_t v;
	ssize_t r = read(efd, &v, sizeof(v));
	(void)r; /* EAGAIN: nothing to drain */
}

static void arm(struct fdwatch *fw)
{
	pthread_mutex_lock(&fw->lock);
	fw->snapshot(fw->owner, fw->probes, &fw->n);
	pthread_mutex_unlock(&fw->lock);
	drain(fw->efd);
	uint32_t c = atomic_load_explicit(&fw->ctl, memory_order_relaxed);
	/* Release: the snapshot written above is seen by the thread that
	 * sees the new word (it takes the lock too; this orders the arm
	 * after the drain, so a signal for the new arm is never drained). */
	atomic_store_explicit(&fw->ctl, ((c & ~FW_QUIT) + FW_GEN) | FW_ARMED,
			      memory_order_release);
	futex_wake_all_shared(&fw->ctl);
}

void fdwatch_rearm(struct fdwatch *fw)
{
	struct probe now[SHMBUS_WAITSET_MAX];
	size_t n;
	/* Nothing new to watch while armed on the same snapshot. */
	uint32_t c = atomic_load_explicit(&fw->ctl, memory_order_relaxed);
	if (c & FW_ARMED) {
		fw->snapshot(fw->owner, now, &n);
		pthread_mutex_lock(&fw->lock);
		bool same = n == fw->n;
		for (size_t i = 0; same && i < n; i++)
			same = now[i].kind == fw->probes[i].kind && now[i].map == fw->probes[i].map &&
			       now[i].seq == fw->probes[i].seq &&
			       now[i].page == fw->probes[i].page && now[i].gen == fw->probes[i].gen;
		pthread_mutex_unlock(&fw->lock);
		if (same)
			return;
	}
	arm(fw);
}

void fdwatch_sync(struct fdwatch *fw)
{
	arm(fw);
	/* Relaxed: our own arm's generation (a later one only waits longer). */
	uint32_t want = atomic_load_explicit(&fw->ctl, memory_order_relaxed) / FW_GEN;
	atomic_store_explicit(&fw->syncing, 1, memory_order_seq_cst);
	for (;;) {
		uint32_t seen = atomic_load_explicit(&fw->copied, memory_order_seq_cst);
		if ((int32_t)(seen - want) >= 0)
			break;
		/* The thread wakes on the new arm, copies it, and says so. */
		futex_wait_shared(&fw->copied, seen, -1);
	}
	atomic_store_explicit(&fw->syncing, 0, memory_order_relaxed);
}

int fdwatch_start(struct fdwatch **out, fdwatch_snapshot_fn snapshot, void *owner)
{
	struct fdwatch *fw = calloc(1, sizeof(*fw));
	if (!fw)
		return err_fail(SHMBUS_ENOMEM, "out of memory for an event descriptor");
	fw->snapshot = snapshot;
	fw->owner = owner;
	fw->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fw->efd < 0) {
		int e = errno;
		free(fw);
		return err_fail(SHMBUS_ESYS, "eventfd: %s", strerror(e));
	}
	pthread_mutex_init(&fw->lock, NULL);
	arm(fw);
	int e = pthread_create(&fw->thread, NULL, fdwatch_main, fw);
	if (e) {
		close(fw->efd);
		pthread_mutex_destroy(&fw->lock);
		free(fw);
		return err_fail(SHMBUS_ESYS, "pthread_create: %s", strerror(e));
	}
	*out = fw;
	return 0;
}

void fdwatch_stop(struct fdwatch *fw)
{
	if (!fw)
		return;
	atomic_fetch_or_explicit(&fw->ctl, FW_QUIT, memory_order_release);
	futex_wake_all_shared(&fw->ctl);
	pthread_join(fw->thread, NULL);
	close(fw->efd);
	pthread_mutex_destroy(&fw->lock);
	free(fw);
}
