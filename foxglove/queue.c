/*
 * queue.c - frames (a message as it goes out, with room for the WebSocket
 * header in front) and the rings of frame references that clients and
 * subscriptions queue.
 */
#include "server.h"

#include <stdlib.h>
#include <string.h>

struct fox_frame *fox_frame_new(size_t len, bool text)
{
	struct fox_frame *f = malloc(sizeof(*f) + LWS_PRE + len);

	if (!f)
		return NULL;
	f->refs = 1;
	f->text = text;
	f->len = len;
	return f;
}

void fox_frame_unref(struct fox_frame *f)
{
	if (f && --f->refs == 0)
		free(f);
}

int fox_queue_push(struct fox_queue *q, struct fox_frame *f, uint64_t order)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		struct fox_queued *v = malloc(cap * sizeof(*v));

		if (!v)
			return -1;
		for (size_t i = 0; i < q->n; i++)
			v[i] = q->v[(q->head + i) % q->cap];
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	q->v[(q->head + q->n) % q->cap] = (struct fox_queued){ f, order };
	q->n++;
	q->bytes += f->len;
	return 0;
}

const struct fox_queued *fox_queue_head(const struct fox_queue *q)
{
	return q->n ? &q->v[q->head] : NULL;
}

struct fox_frame *fox_queue_pop(struct fox_queue *q)
{
	struct fox_frame *f;

	if (!q->n)
		return NULL;
	f = q->v[q->head].frame;
	q->head = (q->head + 1) % q->cap;
	q->n--;
	q->bytes -= f->len;
	return f;
}

void fox_queue_clear(struct fox_queue *q)
{
	struct fox_frame *f;

	while ((f = fox_queue_pop(q)))
		fox_frame_unref(f);
	free(q->v);
	memset(q, 0, sizeof(*q));
}
