/*
 * plans.c - what the runtime works out once per message type (a plan) and
 * keeps for the life of the process: a table any thread may fill, without
 * a lock. size_bound.c keeps its size plans here, decode.c its decoding
 * plans, each in a table of its own.
 */
#include "internal.h"

static size_t slot_of(const ProtobufCMessageDescriptor *desc)
{
	return (size_t)(((uintptr_t)desc >> 4) * 0x9E3779B97F4A7C15ull >> 56) % PLAN_SLOTS;
}

struct plan_head *plan_table_find(struct plan_table *t, const ProtobufCMessageDescriptor *desc)
{
	for (size_t i = 0, s = slot_of(desc); i < PLAN_SLOTS; i++, s = (s + 1) % PLAN_SLOTS) {
		/* Acquire: pairs with the release of the CAS that put the plan
		 * there, so its fields are seen as they were filled. */
		struct plan_head *p = atomic_load_explicit(&t->slot[s], memory_order_acquire);

		if (!p || p->desc == desc)
			return p;
	}
	return NULL;
}

struct plan_head *plan_table_insert(struct plan_table *t, struct plan_head *p)
{
	for (size_t i = 0, s = slot_of(p->desc); i < PLAN_SLOTS; i++, s = (s + 1) % PLAN_SLOTS) {
		struct plan_head *seen = NULL;

		/* Release: publishes p's fields to plan_table_find's acquire
		 * load. Acquire on failure: seen's fields are read next. */
		if (atomic_compare_exchange_strong_explicit(&t->slot[s], &seen, p,
							    memory_order_acq_rel,
							    memory_order_acquire))
			return p;
		if (seen->desc == p->desc) {
			free(p);
			return seen;
		}
	}
	free(p);
	return NULL;
}
