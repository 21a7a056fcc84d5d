/*
 * main.c - shmbus-bridge: options, the DDS domain and participant, the two
 * forwarding threads, the statistics line once a second, and a clean stop
 * on SIGINT/SIGTERM.
 */
#include "bridge.h"
#include "envelope.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fputs("usage: shmbus-bridge [options] --out PATTERN... --in PATTERN...\n"
	      "Forward bus topics to a DDS domain (Eclipse Cyclone DDS) and back.\n"
	      "\n"
	      "  --bus NAME       the local bus (default $SHMBUS_BUS, else \"default\")\n"
	      "  --out PATTERN    send bus topics matching PATTERN to DDS (glob; '*' also\n"
	      "                   matches '/'); may be repeated\n"
	      "  --in PATTERN     publish on the bus the DDS topics other bridges announce\n"
	      "                   whose bus topic name matches PATTERN; may be repeated\n"
	      "  --domain ID      DDS domain id (default 0)\n"
	      "  --reliable       reliable DDS delivery (default: best effort, for sensor data)\n"
	      "  --depth N        DDS history depth per topic when best effort (default 16;\n"
	      "                   --reliable keeps all and makes a lagging writer wait)\n"
	      "  --match-wait MS  a topic that appears holds its messages on the bus until the\n"
	      "                   bridges that take it are ready for them, at most MS (default\n"
	      "                   2000; 0: do not wait)\n"
	      "  --config FILE    Cyclone DDS XML configuration (interfaces, peers, sizes);\n"
	      "                   default: $CYCLONEDDS_URI, else Cyclone's defaults\n"
	      "  --stats-ms N     statistics line period (default 1000; 0: none)\n"
	      "  --verbose        log every topic bridged\n"
	      "  --help           this text\n"
	      "\n"
	      "Once a period, one line on stdout:\n"
	      "  stats out N bytes N in N bytes N bus_lost N write_failed N match_timeouts N\n"
	      "  dds_lost N dds_rejected N dds_gaps N src_lost N marked_lost N malformed N\n"
	      "  publish_failed N topics_out N topics_in N in_peers N\n"
	      "(bridge/README.md says what each counts.)\n"
	      "A message that came in from DDS is never sent out again, so bridges on one\n"
	      "domain do not echo each other.\n",
	      f);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *s = malloc(cap);
	while (s) {
		size_t r = fread(s + n, 1, cap - n - 1, f);
		n += r;
		if (n + 1 < cap)
			break;
		char *t = realloc(s, cap * 2);
		if (!t) {
			free(s);
			s = NULL;
			break;
		}
		s = t;
		cap *= 2;
	}
	bool bad = ferror(f);
	fclose(f);
	if (!s || bad) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	return s;
}

static void print_stats(struct bridge *b)
{
	struct bridge_counters *c = &b->c;
#define V(x) (unsigned long long)atomic_load_explicit(&c->x, memory_order_relaxed)
	printf("stats out %llu bytes %llu in %llu bytes %llu bus_lost %llu write_failed %llu "
	       "match_timeouts %llu dds_lost %llu dds_rejected %llu dds_gaps %llu src_lost %llu "
	       "marked_lost %llu malformed %llu publish_failed %llu topics_out %llu topics_in %llu "
	       "in_peers %llu\n",
	       V(out_msgs), V(out_bytes), V(in_msgs), V(in_bytes), V(bus_lost), V(write_failed),
	       V(match_timeouts), V(dds_lost), V(dds_rejected), V(dds_gaps), V(src_lost),
	       V(marked_lost), V(malformed), V(publish_failed), V(topics_out), V(topics_in),
	       V(in_peers));
#undef V
	fflush(stdout);
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	static struct bridge br;
	struct bridge *b = &br;
	long domain = 0, depth = 16, stats_ms = 1000, match_wait_ms = 2000;
	const char *config_path = NULL;
	enum { O_BUS = 1, O_OUT, O_IN, O_DOMAIN, O_RELIABLE, O_DEPTH, O_MATCH_WAIT, O_CONFIG, O_STATS,
	       O_VERBOSE, O_HELP };
	static const struct option opts[] = {
		{ "bus", required_argument, NULL, O_BUS },
		{ "out", required_argument, NULL, O_OUT },
		{ "in", required_argument, NULL, O_IN },
		{ "domain", required_argument, NULL, O_DOMAIN },
		{ "reliable", no_argument, NULL, O_RELIABLE },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "match-wait", required_argument, NULL, O_MATCH_WAIT },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "stats-ms", required_argument, NULL, O_STATS },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	b->bus_name = getenv("SHMBUS_BUS");
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_BUS: b->bus_name = optarg; break;
		case O_OUT:
		case O_IN: {
			const char **list = o == O_OUT ? b->out_patterns : b->in_patterns;
			size_t *n = o == O_OUT ? &b->n_out : &b->n_in;
			if (*n == BRIDGE_MAX_PATTERNS) {
				fprintf(stderr, "shmbus-bridge: at most %d patterns per direction\n",
					BRIDGE_MAX_PATTERNS);
				return 2;
			}
			/* Patterns travel one a line in DDS user data (peers.c). */
			if (!optarg[0] || strchr(optarg, '\n')) {
				fprintf(stderr, "shmbus-bridge: a pattern is not empty and has no newline\n");
				return 2;
			}
			list[(*n)++] = optarg;
			break;
		}
		case O_DOMAIN:
			if (!parse_int(optarg, 0, 232, &domain)) {
				fprintf(stderr, "shmbus-bridge: --domain takes 0..232, not '%s'\n", optarg);
				return 2;
			}
			break;
		case O_RELIABLE: b->reliable = true; break;
		case O_DEPTH:
			if (!parse_int(optarg, 1, 100000, &depth)) {
				fprintf(stderr, "shmbus-bridge: --depth takes 1..100000, not '%s'\n", optarg);
				return 2;
			}
			break;
		case O_MATCH_WAIT:
			if (!parse_int(optarg, 0, 3600000, &match_wait_ms)) {
				fprintf(stderr, "shmbus-bridge: --match-wait takes 0..3600000 (ms), not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case O_CONFIG: config_path = optarg; break;
		case O_STATS:
			if (!parse_int(optarg, 0, 3600000, &stats_ms)) {
				fprintf(stderr, "shmbus-bridge: --stats-ms takes 0..3600000, not '%s'\n", optarg);
				return 2;
			}
			break;
		case O_VERBOSE: b->verbose = true; break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmbus-bridge: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (b->n_out + b->n_in == 0) {
		fprintf(stderr, "shmbus-bridge: nothing to bridge: give --out and/or --in patterns\n");
		usage(stderr);
		return 2;
	}
	b->depth = (int32_t)depth;
	b->match_wait_ns = (int64_t)match_wait_ms * 1000000;
	pthread_mutex_init(&b->own_lock, NULL);

	struct shmbus_connect_options co;
	shmbus_connect_options_init(&co);
	int rc = shmbus_connect(b->bus_name, &co, &b->bus);
	if (rc) {
		fprintf(stderr, "shmbus-bridge: connecting to bus '%s': %s: %s\n",
			b->bus_name ? b->bus_name : "default", shmbus_strerror(rc), shmbus_errmsg());
		return 1;
	}
	b->bus_name = shmbus_bus_name(b->bus);
	char host[64] = "?";
	gethostname(host, sizeof(host) - 1);
	snprintf(b->source, sizeof(b->source), "%s:%s", host, b->bus_name);
	if (getrandom(&b->id, sizeof(b->id), 0) != (ssize_t)sizeof(b->id) || b->id == 0) {
		b->id = ((uint64_t)getpid() << 32) ^ (uint64_t)now_real_ns();
	}

	if (config_path) {
		char *xml = read_file(config_path);
		if (!xml) {
			fprintf(stderr, "shmbus-bridge: reading --config %s: %s\n", config_path,
				strerror(errno));
			shmbus_disconnect(b->bus);
			return 1;
		}
		dds_entity_t d = dds_create_domain((dds_domainid_t)domain, xml);
		free(xml);
		if (d < 0) {
			fprintf(stderr, "shmbus-bridge: Cyclone DDS refused %s: %s\n", config_path,
				dds_strretcode(d));
			shmbus_disconnect(b->bus);
			return 1;
		}
	}
	b->participant = dds_create_participant((dds_domainid_t)domain, NULL, NULL);
	if (b->participant < 0) {
		fprintf(stderr, "shmbus-bridge: DDS participant on domain %ld: %s\n", domain,
			dds_strretcode(b->participant));
		shmbus_disconnect(b->bus);
		return 1;
	}
	b->announce_topic = dds_create_topic(b->participant, &shmbus_bridge_Announce_desc,
					     "shmbus/announce", NULL, NULL);
	if (b->announce_topic < 0) {
		fprintf(stderr, "shmbus-bridge: DDS announce topic: %s\n",
			dds_strretcode(b->announce_topic));
		dds_delete(DDS_CYCLONEDDS_HANDLE);
		shmbus_disconnect(b->bus);
		return 1;
	}

	/* Signals are taken by the main thread only (sigtimedwait below). */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	pthread_t out_t, in_t;
	bool out_started = b->n_out && pthread_create(&out_t, NULL, bridge_out_thread, b) == 0;
	bool in_started = b->n_in && pthread_create(&in_t, NULL, bridge_in_thread, b) == 0;
	if ((b->n_out && !out_started) || (b->n_in && !in_started)) {
		fprintf(stderr, "shmbus-bridge: cannot start threads\n");
		atomic_store(&b->stop, true);
	}
	bridge_log(b, "bridging domain %ld, %s, depth %d, id %016llx", domain,
		   b->reliable ? "reliable" : "best effort", b->depth, (unsigned long long)b->id);

	struct timespec period = { stats_ms ? stats_ms / 1000 : 1, stats_ms ? (stats_ms % 1000) * 1000000 : 0 };
	/* The threads set stop on a fatal error; relaxed: we only look. */
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		int sig = sigtimedwait(&sigs, NULL, &period);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (stats_ms)
			print_stats(b);
	}
	atomic_store(&b->stop, true);
	if (out_started)
		pthread_join(out_t, NULL);
	if (in_started)
		pthread_join(in_t, NULL);
	if (stats_ms)
		print_stats(b);
	dds_delete(DDS_CYCLONEDDS_HANDLE);
	shmbus_disconnect(b->bus);
	pthread_mutex_destroy(&b->own_lock);
	return 0;
}
