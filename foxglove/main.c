/*
 * main.c - shmbus-foxglove: the options, the libwebsockets context and its
 * one event loop (WebSocket clients, the bus's event descriptors, the stop
 * signals through a signalfd), and a clean stop with a summary of what was
 * sent, dropped and lost.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fputs("usage: shmbus-foxglove [options]\n"
	      "Serve the bus's topics to Foxglove or Lichtblick over the Foxglove WebSocket\n"
	      "protocol (" FOX_SUBPROTOCOL "): in the app, Open connection, Foxglove\n"
	      "WebSocket, ws://localhost:8765.\n"
	      "\n"
	      "  --bus NAME             the bus (default $SHMBUS_BUS, else \"default\")\n"
	      "  --address ADDR         address to listen on (default 127.0.0.1; 0.0.0.0 or ::\n"
	      "                         for every interface: anyone who reaches it may read and,\n"
	      "                         unless --no-client-publish, publish)\n"
	      "  --port N               TCP port (default 8765; 0: any free port, printed)\n"
	      "  --topics PATTERN       offer only topics matching PATTERN (glob; '*' also\n"
	      "                         matches '/'; a leading '/' is ignored on both sides);\n"
	      "                         may be repeated (default: every topic)\n"
	      "  --queue-bytes N        per client: bytes of messages queued for a client that\n"
	      "                         reads slower than they come (default 33554432); beyond\n"
	      "                         it the oldest are dropped, counted and reported\n"
	      "  --queue-messages N     per client: messages queued, likewise (default 4096)\n"
	      "  --no-client-publish    do not let clients publish (Publish and Teleop panels)\n"
	      "  --publish-max-size N   largest message a client may publish on a topic\n"
	      "                         the topic grows to it; a new one starts at the\n"
	      "                         type's bound, else 512 B (default 65536)\n"
	      "  --verbose              log every subscription and advertisement\n"
	      "  --help                 this text\n"
	      "\n"
	      "Every typed topic with a schema is advertised with encoding protobuf and its\n"
	      "FileDescriptorSet; topics are advertised and unadvertised as they come and go.\n"
	      "Untyped topics, and typed ones without a schema, cannot be decoded by a client\n"
	      "and are not advertised (the log says so). Messages are sent with their publish\n"
	      "time. Losses on the bus and messages dropped for slow clients are logged and\n"
	      "sent to the clients concerned as status messages. SIGINT or SIGTERM stops.\n",
	      f);
}

static bool parse_size(const char *s, unsigned long long lo, unsigned long long hi,
		       unsigned long long *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Where an adopted descriptor's events go. */
struct fox_src {
	enum fox_src_kind kind;
	void *ptr;
};

static struct fox_server server;

static int on_events(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len)
{
	struct fox_src *src = lws_get_opaque_user_data(wsi);

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (!src)
			return 0;
		if (src->kind == SRC_SIGNAL) {
			struct signalfd_siginfo si;
			int fd = lws_get_socket_fd(wsi);

			if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				fox_log("stopping on signal %u", si.ssi_signo);
			server.stop = true;
			lws_cancel_service(server.ctx);
		} else if (src->kind == SRC_WATCH) {
			fox_channels_on_watch(&server);
		} else if (src->kind == SRC_CHANNEL) {
			fox_channels_on_channel(&server, src->ptr);
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		/* lws closes every descriptor when the context ends, maybe
		 * before the clients whose leaving would release them. */
		if (src && src->kind == SRC_CHANNEL)
			((struct fox_channel *)src->ptr)->wsi = NULL;
		else if (src && src->kind == SRC_WATCH)
			server.watch_wsi = NULL;
		free(src);
		lws_set_opaque_user_data(wsi, NULL);
		return 0;
	default:
		return 0;
	}
}

/* lws closes what it adopted, and the bus owns its descriptors, so the
 * loop gets a duplicate. */
struct lws *fox_adopt_fd(struct fox_server *s, int fd, int kind, void *ptr)
{
	lws_adopt_desc_t d;
	struct fox_src *src = malloc(sizeof(*src));
	struct lws *wsi;
	int dup_fd;

	if (!src)
		return NULL;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0) {
		free(src);
		return NULL;
	}
	src->kind = kind;
	src->ptr = ptr;
	memset(&d, 0, sizeof(d));
	d.vh = s->vhost;
	d.type = LWS_ADOPT_RAW_FILE_DESC;
	d.fd.filefd = dup_fd;
	d.vh_prot_name = "shmbus-events";
	d.opaque = src;
	wsi = lws_adopt_descriptor_vhost_via_info(&d);
	if (!wsi)
		free(src); /* lws closed dup_fd */
	return wsi;
}

void fox_release_fd(struct lws *wsi)
{
	struct fox_src *src = wsi ? lws_get_opaque_user_data(wsi) : NULL;

	if (!src)
		return;
	src->kind = SRC_RELEASED; /* what it was for is going away */
	src->ptr = NULL;
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static int on_http(struct lws *wsi)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "This is shmbus-foxglove, a Foxglove WebSocket server (subprotocol %s). "
		 "Open it in Foxglove or Lichtblick: Open connection, Foxglove WebSocket.",
		 FOX_SUBPROTOCOL);
	if (lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, body))
		return -1;
	return lws_http_transaction_completed(wsi);
}

static int on_websocket(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			size_t len)
{
	struct fox_client **pc = user;
	struct fox_client *c = pc ? *pc : NULL;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return on_http(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		c = fox_client_new(&server, wsi);
		if (!c)
			return -1;
		*pc = c;
		fox_send_server_info(c);
		fox_send_advertise(&server, c, NULL);
		return 0;
	case LWS_CALLBACK_RECEIVE: {
		if (!c)
			return -1;
		if (lws_is_first_fragment(wsi)) {
			c->rx_len = 0;
			c->rx_binary = lws_frame_is_binary(wsi);
			c->rx_too_big = false;
		}
		/* A client message is at most this big: a camera frame a
		 * Publish panel would send fits many times over. */
		if (c->rx_len + len > (size_t)64 << 20) {
			c->rx_too_big = true;
		} else if (!c->rx_too_big) {
			if (c->rx_len + len > c->rx_cap) {
				size_t cap = c->rx_cap ? c->rx_cap : 4096;
				unsigned char *p;

				while (cap < c->rx_len + len)
					cap *= 2;
				p = realloc(c->rx, cap);
				if (!p)
					return -1;
				c->rx = p;
				c->rx_cap = cap;
			}
			memcpy(c->rx + c->rx_len, in, len);
			c->rx_len += len;
		}
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
			return 0;
		if (c->rx_too_big)
			fox_send_status(c, 2, NULL, "message of more than 64 MiB refused");
		else
			fox_on_client_message(c, c->rx, c->rx_len, c->rx_binary);
		c->rx_len = 0;
		return 0;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return c ? fox_client_write(c) : 0;
	case LWS_CALLBACK_CLOSED:
		if (c) {
			fox_client_free(c);
			*pc = NULL;
		}
		return 0;
	default:
		return 0;
	}
}

static void lws_logger(int level, const char *line)
{
	size_t n = strlen(line);

	(void)level;
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	fox_log("libwebsockets: %.*s", (int)n, line);
}

static int parse_args(int argc, char **argv, struct fox_options *o)
{
	enum { O_BUS = 1, O_ADDRESS, O_PORT, O_TOPICS, O_QBYTES, O_QMSGS, O_NOPUB, O_PUBMAX,
	       O_VERBOSE, O_HELP };
	static const struct option opts[] = {
		{ "bus", required_argument, NULL, O_BUS },
		{ "address", required_argument, NULL, O_ADDRESS },
		{ "port", required_argument, NULL, O_PORT },
		{ "topics", required_argument, NULL, O_TOPICS },
		{ "queue-bytes", required_argument, NULL, O_QBYTES },
		{ "queue-messages", required_argument, NULL, O_QMSGS },
		{ "no-client-publish", no_argument, NULL, O_NOPUB },
		{ "publish-max-size", required_argument, NULL, O_PUBMAX },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	int opt;

	memset(o, 0, sizeof(*o));
	o->address = "127.0.0.1";
	o->port = 8765;
	o->queue_bytes = (size_t)32 << 20;
	o->queue_messages = 4096;
	o->client_publish = true;
	o->publish_max_size = 64 << 10;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case O_BUS: o->bus = optarg; break;
		case O_ADDRESS: o->address = optarg; break;
		case O_PORT:
			if (!parse_size(optarg, 0, 65535, &v)) {
				fprintf(stderr, "shmbus-foxglove: --port takes 0..65535, not '%s'\n", optarg);
				return 2;
			}
			o->port = (int)v;
			break;
		case O_TOPICS:
			if (o->n_patterns == FOX_MAX_PATTERNS) {
				fprintf(stderr, "shmbus-foxglove: at most %d --topics patterns\n",
					FOX_MAX_PATTERNS);
				return 2;
			}
			o->patterns[o->n_patterns++] = optarg;
			break;
		case O_QBYTES:
			if (!parse_size(optarg, 1024, (unsigned long long)1 << 40, &v)) {
				fprintf(stderr, "shmbus-foxglove: --queue-bytes takes 1024..2^40, not '%s'\n",
					optarg);
				return 2;
			}
			o->queue_bytes = (size_t)v;
			break;
		case O_QMSGS:
			if (!parse_size(optarg, 1, 10000000, &v)) {
				fprintf(stderr, "shmbus-foxglove: --queue-messages takes 1..10000000, not '%s'\n",
					optarg);
				return 2;
			}
			o->queue_messages = (size_t)v;
			break;
		case O_NOPUB: o->client_publish = false; break;
		case O_PUBMAX:
			if (!parse_size(optarg, 16, (unsigned long long)1 << 30, &v)) {
				fprintf(stderr, "shmbus-foxglove: --publish-max-size takes 16..2^30, not '%s'\n",
					optarg);
				return 2;
			}
			o->publish_max_size = (uint32_t)v;
			break;
		case O_VERBOSE: o->verbose = true; break;
		case O_HELP: usage(stdout); return 1;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmbus-foxglove: unexpected argument '%s' (patterns go after --topics)\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

/* The stop signals arrive through a descriptor in the loop; every thread
 * (libshmbus starts some for event descriptors) inherits the mask. */
static int block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void summary(struct fox_server *s)
{
	for (struct fox_channel *ch = s->channels; ch; ch = ch->next)
		if (ch->received || ch->lost || ch->skipped)
			fox_log("channel %u '%s': %llu messages received, %llu lost on the bus, %llu "
				"skipped while every client was behind",
				ch->id, ch->topic, (unsigned long long)ch->received,
				(unsigned long long)ch->lost, (unsigned long long)ch->skipped);
}

int main(int argc, char **argv)
{
	static const struct lws_protocols protocols[] = {
		{ FOX_SUBPROTOCOL, on_websocket, sizeof(struct fox_client *), 65536, 0, NULL,
		  /* send a whole frame per send(): what the kernel does not take
		   * at once lws keeps, instead of splitting every frame */
		  (size_t)1 << 30 },
		{ "shmbus-events", on_events, 0, 0, 0, NULL, 0 },
		{ NULL, NULL, 0, 0, 0, NULL, 0 },
	};
	struct fox_server *s = &server;
	struct lws_context_creation_info info;
	struct shmbus_connect_options co;
	int rc, sigfd;

	rc = parse_args(argc, argv, &s->opt);
	if (rc)
		return rc == 1 ? 0 : rc;
	sigfd = block_stop_signals();
	if (sigfd < 0) {
		fprintf(stderr, "shmbus-foxglove: signalfd: %s\n", strerror(errno));
		return 1;
	}
	snprintf(s->session_id, sizeof(s->session_id), "%lld-%d", (long long)now_mono_ns(),
		 (int)getpid());

	shmbus_connect_options_init(&co);
	rc = shmbus_connect(s->opt.bus, &co, &s->bus);
	if (rc) {
		fprintf(stderr, "shmbus-foxglove: connecting to bus '%s': %s: %s\n",
			s->opt.bus ? s->opt.bus : "default", shmbus_strerror(rc), shmbus_errmsg());
		return 1;
	}

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_logger);
	memset(&info, 0, sizeof(info));
	info.port = s->opt.port;
	info.iface = s->opt.address;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	info.vhost_name = "shmbus-foxglove";
	/* An IPv4 address is bound as IPv4 (lws would otherwise make an IPv6
	 * socket and look the address up among the interfaces' IPv6 ones). */
	if (!strchr(s->opt.address, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	s->ctx = lws_create_context(&info);
	if (!s->ctx) {
		fprintf(stderr, "shmbus-foxglove: cannot listen on %s port %d (in use, or not an "
				"address of this host?)\n",
			s->opt.address, s->opt.port);
		shmbus_disconnect(s->bus);
		return 1;
	}
	s->vhost = lws_get_vhost_by_name(s->ctx, "shmbus-foxglove");
	if (!s->vhost || !fox_adopt_fd(s, sigfd, SRC_SIGNAL, NULL) || fox_channels_start(s) != 0) {
		fprintf(stderr, "shmbus-foxglove: cannot start: %s\n", shmbus_errmsg());
		lws_context_destroy(s->ctx);
		shmbus_disconnect(s->bus);
		return 1;
	}
	close(sigfd); /* the loop has its own duplicate */
	{
		int port = lws_get_vhost_listen_port(s->vhost);
		const char *a = s->opt.address;
		bool v6 = strchr(a, ':') != NULL;

		printf("shmbus-foxglove: bus %s, listening on ws://%s%s%s:%d (Foxglove: Open "
		       "connection, ws://localhost:%d)\n",
		       shmbus_bus_name(s->bus), v6 ? "[" : "", a, v6 ? "]" : "", port, port);
		fflush(stdout);
	}

	while (!s->stop)
		if (lws_service(s->ctx, 0) < 0)
			break;

	/* Closing the context closes every connection (its clients are freed
	 * in their CLOSED callbacks) and the adopted descriptors. */
	lws_context_destroy(s->ctx);
	summary(s);
	fox_channels_stop(s);
	shmbus_disconnect(s->bus);
	fox_log("stopped");
	return 0;
}
