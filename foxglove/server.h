/*
 * server.h - what the parts of shmbus-foxglove share: the options, the
 * server's state, channels (bus topics offered to clients), clients and
 * their subscriptions, and the frames that go out.
 *
 * Everything runs on one thread, libwebsockets' event loop (main.c): the
 * bus's event descriptors (the topic watch's, and each channel
 * subscriber's) are adopted into that loop, so there is no lock and no
 * timer. Data flows
 *
 *   bus slot --view, one copy--> frame --ref--> each subscription's queue
 *            --lws_write--> socket
 *
 * A frame is shared by every client subscribed to its channel (reference
 * counted); each subscription queues references, bounded per client, and
 * drops its oldest when the client reads slower than the data comes.
 */
#ifndef SHMBUS_FOXGLOVE_SERVER_H
#define SHMBUS_FOXGLOVE_SERVER_H

#include <libwebsockets.h>
#include <shmbus/shmbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "now.h"
#include "pbjson.h"

#define FOX_SUBPROTOCOL "foxglove.websocket.v1"
#define FOX_MAX_PATTERNS 64

struct fox_options {
	const char *bus;            /* NULL: $SHMBUS_BUS or "default" */
	const char *address;        /* 127.0.0.1 */
	int port;                   /* 8765; 0: any free port */
	const char *patterns[FOX_MAX_PATTERNS]; /* --topics; none: every topic */
	size_t n_patterns;
	size_t queue_bytes;         /* per client */
	size_t queue_messages;      /* per client */
	bool client_publish;        /* offer the clientPublish capability */
	uint32_t publish_max_size;  /* largest message a client may publish */
	bool verbose;
};

/* One message on its way out. A data frame (binary) is shared by every
 * subscription of its channel; each lws_write patches the subscription id
 * in, since lws either sends the bytes or copies what it could not send
 * before it returns. buf: LWS_PRE bytes of headroom for the WebSocket
 * header, then len bytes. */
struct fox_frame {
	uint32_t refs;
	bool text;
	size_t len;
	unsigned char buf[];
};

struct fox_frame *fox_frame_new(size_t len, bool text);
static inline unsigned char *fox_frame_data(struct fox_frame *f)
{
	return f->buf + LWS_PRE;
}
void fox_frame_unref(struct fox_frame *f);

/* A ring of frame references in arrival order. */
struct fox_queue {
	struct fox_queued {
		struct fox_frame *frame;
		uint64_t order; /* the client's arrival counter: sending picks
				   the lowest head over all subscriptions */
	} *v;
	size_t head, n, cap;
	size_t bytes;
};

struct fox_channel;
struct fox_client;

struct fox_subscription {
	uint32_t id;                    /* chosen by the client */
	struct fox_client *client;
	struct fox_channel *ch;
	struct fox_queue q;
	uint64_t sent, dropped;
	struct fox_subscription *next;    /* the client's list */
	struct fox_subscription *ch_next; /* the channel's list */
};

/* A bus topic offered to clients. Its bus subscriber exists while at least
 * one client subscribes. */
struct fox_channel {
	uint32_t id;
	char *topic, *type;
	uint8_t *schema;                /* serialized FileDescriptorSet */
	size_t schema_len;
	char *schema_b64;
	shmbus_sub *sub;
	struct lws *wsi;                /* the sub's descriptor in the loop */
	struct fox_subscription *subs;
	struct fox_frame *last;         /* newest message, for late subscribers */
	uint64_t received, lost;        /* by the bus subscriber, in all */
	/* Every client of it is behind: not read (its descriptor out of the
	 * loop) until one catches up; what the publisher overwrote meanwhile
	 * counts as dropped for those clients, not as lost. */
	bool paused, skipping;
	uint64_t skipped;
	uint64_t lost_unreported;
	int64_t lost_reported_ns;
	struct fox_channel *next;
};

/* A channel a client advertised to publish on (clientPublish). */
struct fox_client_channel {
	uint32_t id;
	char *topic, *type;
	bool json;                      /* payloads are JSON, else protobuf */
	pbjson_schema *schema;          /* how to check or encode them */
	bool schema_owned;
	shmbus_pub *pub;
	uint64_t published, refused;
	struct fox_client_channel *next;
};

struct fox_server;

struct fox_client {
	struct fox_server *srv;
	struct lws *wsi;
	char name[80];                  /* "127.0.0.1:54321" */
	struct fox_subscription *subs;
	struct fox_client_channel *pubs;
	/* Control messages (JSON) go first and are never dropped. */
	struct fox_queue ctl;
	uint64_t order;
	size_t q_msgs, q_bytes;         /* data queued over all subscriptions */
	uint64_t sent, dropped;
	uint64_t dropped_unreported;
	int64_t drop_reported_ns;
	bool dropping;                  /* in an episode of full queue */
	unsigned char *rx;              /* a client message being reassembled */
	size_t rx_len, rx_cap;
	bool rx_binary, rx_too_big;
	struct fox_client *next;
};

struct fox_server {
	struct fox_options opt;
	shmbus_bus *bus;
	shmbus_topic_watch *watch;
	struct lws *watch_wsi;          /* its descriptor in the loop */
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	struct fox_channel *channels;
	uint32_t next_channel_id;
	struct fox_client *clients;
	pbjson_schema *known;           /* shmbus.msgs + foxglove types */
	char session_id[32];
	bool stop;
};

/* ---------------------------------------------------------- main.c */
/* Where an adopted descriptor's events go. */
enum fox_src_kind { SRC_RELEASED = 0, SRC_SIGNAL, SRC_WATCH, SRC_CHANNEL };
/* Put a descriptor into the event loop; ptr is what its events are for
 * (the channel). NULL on failure. */
struct lws *fox_adopt_fd(struct fox_server *s, int fd, int kind, void *ptr);
/* Take it out again (asynchronously: its events stop at once). */
void fox_release_fd(struct lws *wsi);

/* ---------------------------------------------------------- log.c */
void fox_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------- queue.c */
/* 0, or -1 when out of memory. The queue takes the reference. */
int fox_queue_push(struct fox_queue *q, struct fox_frame *f, uint64_t order);
struct fox_frame *fox_queue_pop(struct fox_queue *q);
const struct fox_queued *fox_queue_head(const struct fox_queue *q);
void fox_queue_clear(struct fox_queue *q);

/* ---------------------------------------------------------- channels.c */
/* Open the topic watch and add its descriptor to the loop. */
int fox_channels_start(struct fox_server *s);
void fox_channels_stop(struct fox_server *s);
/* The watch's descriptor is readable: take its events. */
void fox_channels_on_watch(struct fox_server *s);
/* A channel subscriber's descriptor is readable: take what it has. */
void fox_channels_on_channel(struct fox_server *s, struct fox_channel *ch);
/* A client has room again: read the channels that waited for it. */
void fox_channels_resume(struct fox_client *c);
/* Whether a client has used half its queue (it is behind). */
bool fox_client_behind(const struct fox_client *c);
struct fox_channel *fox_channel_find(struct fox_server *s, uint32_t id);
struct fox_channel *fox_channel_by_topic(struct fox_server *s, const char *topic);
/* A subscription starts or ends: opens or closes the bus subscriber. */
int fox_channel_attach(struct fox_server *s, struct fox_subscription *sub, char *err,
		       size_t errlen);
void fox_channel_detach(struct fox_server *s, struct fox_subscription *sub);

/* ---------------------------------------------------------- clients.c */
struct fox_client *fox_client_new(struct fox_server *s, struct lws *wsi);
void fox_client_free(struct fox_client *c);
/* Queue a data frame for a subscription (drops oldest when over bounds). */
void fox_client_queue_data(struct fox_subscription *sub, struct fox_frame *f);
/* Queue a control message (takes the malloc'd text). */
void fox_client_queue_text(struct fox_client *c, char *text);
/* The socket is writable: send what is queued. 0, or -1 to close. */
int fox_client_write(struct fox_client *c);
/* Take out a subscription's queued frames (it ends). */
void fox_client_forget(struct fox_subscription *sub);

/* ---------------------------------------------------------- protocol.c */
/* What goes to every client. */
void fox_send_server_info(struct fox_client *c);
void fox_send_advertise(struct fox_server *s, struct fox_client *only,
			struct fox_channel *ch);
void fox_send_unadvertise(struct fox_server *s, uint32_t channel_id);
/* level: 0 info, 1 warning, 2 error; id may be NULL. */
void fox_send_status(struct fox_client *c, int level, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A complete message from a client. */
void fox_on_client_message(struct fox_client *c, const unsigned char *p, size_t n, bool binary);

/* ---------------------------------------------------------- publish.c */
/* clientPublish: a client advertises, publishes, unadvertises. */
void fox_publish_advertise(struct fox_client *c, uint32_t id, const char *topic,
			   const char *encoding, const char *schema_name, const char *schema,
			   const char *schema_encoding);
void fox_publish_unadvertise(struct fox_client *c, uint32_t id);
void fox_publish_data(struct fox_client *c, uint32_t id, const unsigned char *p, size_t n);
void fox_publish_close_all(struct fox_client *c);

#endif
