/*
 * clients.c - one connected Foxglove client: its subscriptions and their
 * queues, the bound that keeps a slow client from costing anyone else
 * (drop the oldest, count, report), and writing frames to its socket in
 * the order they arrived.
 */
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Drop reports to a client that keeps dropping: at most one a second. */
#define REPORT_PERIOD_NS 1000000000LL
/* Frames written per writable callback, so that every client's socket
 * and the bus's descriptors get their turn. */
#define WRITE_BUDGET 256

bool fox_client_behind(const struct fox_client *c)
{
	const struct fox_options *o = &c->srv->opt;

	return c->q_msgs * 2 >= o->queue_messages || c->q_bytes * 2 >= o->queue_bytes;
}

static void peer_name(struct lws *wsi, char *out, size_t cap)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&sa, &len) == 0) {
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;

			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
		} else if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(out, cap, "%s:%d", host, port);
}

struct fox_client *fox_client_new(struct fox_server *s, struct lws *wsi)
{
	struct fox_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = s;
	c->wsi = wsi;
	peer_name(wsi, c->name, sizeof(c->name));
	c->next = s->clients;
	s->clients = c;
	fox_log("client %s connected", c->name);
	return c;
}

static void forget_queue(struct fox_client *c, struct fox_subscription *sub)
{
	c->q_msgs -= sub->q.n;
	c->q_bytes -= sub->q.bytes;
	fox_queue_clear(&sub->q);
}

void fox_client_forget(struct fox_subscription *sub)
{
	struct fox_client *c = sub->client;

	for (struct fox_subscription **p = &c->subs; *p; p = &(*p)->next) {
		if (*p == sub) {
			*p = sub->next;
			break;
		}
	}
	forget_queue(c, sub);
	free(sub);
}

void fox_client_free(struct fox_client *c)
{
	struct fox_server *s = c->srv;

	fox_publish_close_all(c);
	while (c->subs) {
		struct fox_subscription *sub = c->subs;

		fox_channel_detach(s, sub);
		fox_client_forget(sub);
	}
	fox_queue_clear(&c->ctl);
	for (struct fox_client **p = &s->clients; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	fox_log("client %s disconnected: %llu messages sent, %llu dropped%s", c->name,
		(unsigned long long)c->sent, (unsigned long long)c->dropped,
		c->dropped ? " (it read slower than they came)" : "");
	free(c->rx);
	free(c);
}

/* The queue is full: the oldest message of the same subscription goes
 * (a busy topic makes room from itself, so it cannot push out the one
 * message of a rare one), else the oldest of the subscription holding the
 * most. */
static void drop_one(struct fox_client *c, struct fox_subscription *incoming)
{
	struct fox_subscription *victim = incoming;
	struct fox_frame *f;

	if (!victim->q.n) {
		for (struct fox_subscription *s = c->subs; s; s = s->next)
			if (!victim->q.n || s->q.bytes > victim->q.bytes)
				victim = s;
	}
	f = fox_queue_pop(&victim->q);
	if (!f)
		return;
	c->q_msgs--;
	c->q_bytes -= f->len;
	fox_frame_unref(f);
	victim->dropped++;
	c->dropped++;
	c->dropped_unreported++;
	if (!c->dropping) {
		c->dropping = true;
		fox_log("client %s reads slower than the data comes: dropping its oldest messages "
			"(it may queue %zu messages, %zu bytes)",
			c->name, c->srv->opt.queue_messages, c->srv->opt.queue_bytes);
	}
}

void fox_client_queue_data(struct fox_subscription *sub, struct fox_frame *f)
{
	struct fox_client *c = sub->client;
	const struct fox_options *o = &c->srv->opt;

	while (c->q_msgs > 0 &&
	       (c->q_msgs + 1 > o->queue_messages || c->q_bytes + f->len > o->queue_bytes))
		drop_one(c, sub);
	if (fox_queue_push(&sub->q, f, c->order++) != 0) {
		fox_frame_unref(f); /* out of memory: counted as dropped */
		sub->dropped++;
		c->dropped++;
		c->dropped_unreported++;
		c->dropping = true;
		return;
	}
	c->q_msgs++;
	c->q_bytes += f->len;
	lws_callback_on_writable(c->wsi);
}

void fox_client_queue_text(struct fox_client *c, char *text)
{
	struct fox_frame *f;

	if (!text)
		return;
	f = fox_frame_new(strlen(text), true);
	if (f) {
		memcpy(fox_frame_data(f), text, f->len);
		if (fox_queue_push(&c->ctl, f, 0) != 0)
			fox_frame_unref(f);
	}
	free(text);
	lws_callback_on_writable(c->wsi);
}

static struct fox_subscription *oldest_queued(struct fox_client *c)
{
	struct fox_subscription *best = NULL;

	for (struct fox_subscription *s = c->subs; s; s = s->next) {
		const struct fox_queued *h = fox_queue_head(&s->q);

		if (h && (!best || h->order < fox_queue_head(&best->q)->order))
			best = s;
	}
	return best;
}

/* Tell the client (and the log) what it lost: while dropping, once a
 * second; and when it has caught up, always, with the total. */
static void report_drops(struct fox_client *c)
{
	int64_t now = now_mono_ns();
	bool caught_up = c->q_msgs == 0;

	if (!c->dropping)
		return;
	if (!caught_up && (!c->dropped_unreported || now - c->drop_reported_ns < REPORT_PERIOD_NS))
		return;
	if (caught_up)
		fox_send_status(c, 1, "shmbus.dropped",
				"caught up; %llu more messages were dropped before it did (%llu "
				"dropped in all: this connection read slower than they came)",
				(unsigned long long)c->dropped_unreported,
				(unsigned long long)c->dropped);
	else
		fox_send_status(c, 1, "shmbus.dropped",
				"%llu messages dropped: this connection reads slower than they come "
				"(%llu dropped in all)",
				(unsigned long long)c->dropped_unreported,
				(unsigned long long)c->dropped);
	fox_log("client %s: %llu messages dropped (%llu in all)%s", c->name,
		(unsigned long long)c->dropped_unreported, (unsigned long long)c->dropped,
		caught_up ? "; it has caught up" : "");
	c->dropped_unreported = 0;
	c->drop_reported_ns = now;
	if (caught_up)
		c->dropping = false;
}

static int write_frame(struct fox_client *c, struct fox_frame *f)
{
	int rc = lws_write(c->wsi, fox_frame_data(f), f->len,
			   f->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);

	fox_frame_unref(f);
	return rc < 0 ? -1 : 0;
}

int fox_client_write(struct fox_client *c)
{
	int budget = WRITE_BUDGET;

	/* lws keeps what the socket did not take and sends it first; write
	 * more only once that is gone. */
	while (budget-- > 0 && !lws_partial_buffered(c->wsi)) {
		struct fox_subscription *sub;
		struct fox_frame *f = fox_queue_pop(&c->ctl);
		unsigned char *p;

		if (f) {
			if (write_frame(c, f) < 0)
				return -1;
			continue;
		}
		sub = oldest_queued(c);
		if (!sub)
			break;
		f = fox_queue_pop(&sub->q);
		c->q_msgs--;
		c->q_bytes -= f->len;
		/* The frame is shared: this client's subscription id goes in
		 * just before it is written. */
		p = fox_frame_data(f);
		for (int i = 0; i < 4; i++)
			p[1 + i] = (unsigned char)(sub->id >> (8 * i));
		if (write_frame(c, f) < 0)
			return -1;
		sub->sent++;
		c->sent++;
		report_drops(c);
	}
	report_drops(c);
	if (!fox_client_behind(c))
		fox_channels_resume(c);
	if (c->ctl.n || c->q_msgs)
		lws_callback_on_writable(c->wsi);
	return 0;
}
