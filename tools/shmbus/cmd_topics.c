/*
 * cmd_topics.c - `shmbus topics` and `shmbus info TOPIC`: what is on a bus,
 * read live from the topics' shared memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int collect(void *ctx, const char *topic, const char *type_name)
{
	(void)type_name;
	return cli_strings_add(ctx, topic) ? 0 : SHMBUS_ENOMEM;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char topics_usage[] =
	"usage: shmbus topics [--bus NAME]\n\n"
	"One line per topic: name, type, publishers, subscribers, and the last\n"
	"sequence number published (- before the first). A bus whose broker\n"
	"does not run has no topics: only the heading is printed.\n";

int cmd_topics(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help || argc != 1)
		return cli_usage(help, topics_usage);
	int rc;
	shmbus_bus *bus = cli_connect(bus_name, "topics", false, &rc);
	/* A bus without a broker has no topics: an empty list, as
	 * `ros2 topic list` prints with nothing running. */
	if (!bus && rc != SHMBUS_ENOBROKER)
		return 1;
	struct cli_strings ns = { 0 };
	rc = bus ? shmbus_list_topics(bus, collect, &ns) : 0;
	if (rc) {
		cli_fail("topics", rc, NULL);
		cli_strings_free(&ns);
		shmbus_disconnect(bus);
		return 1;
	}
	if (ns.n) /* qsort wants an array, and a bus may have no topic */
		qsort(ns.v, ns.n, sizeof(*ns.v), by_name);
	printf("%-32s %-32s %4s %4s %12s\n", "TOPIC", "TYPE", "PUBS", "SUBS", "LAST_SEQ");
	for (size_t i = 0; i < ns.n; i++) {
		struct shmbus_topic_info ti;
		rc = shmbus_topic_inspect(bus, ns.v[i], &ti, NULL, 0, NULL, NULL, 0, NULL);
		if (rc) {
			fprintf(stderr, "shmbus topics: %s: %s: %s\n", ns.v[i], shmbus_strerror(rc),
				shmbus_errmsg());
			continue;
		}
		char last[24] = "-";
		if (ti.next_seq)
			snprintf(last, sizeof(last), "%llu", (unsigned long long)ti.next_seq - 1);
		printf("%-32s %-32s %4u %4u %12s\n", ti.name,
		       ti.type_name[0] ? ti.type_name : "(untyped)", ti.publishers, ti.subscribers,
		       last);
	}
	cli_strings_free(&ns);
	if (bus)
		shmbus_disconnect(bus);
	return 0;
}

static void human_size(char *buf, size_t len, uint64_t v)
{
	if (v >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", (double)v / (1 << 20));
	else if (v >= 1024)
		snprintf(buf, len, "%.1f KiB", (double)v / 1024);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)v);
}

static const char info_usage[] =
	"usage: shmbus info [--bus NAME] TOPIC\n\n"
	"The topic's layout and type, each publisher (pid, id, published,\n"
	"sequence numbers it skipped) and each subscriber (pid, received, lost,\n"
	"lag behind the newest message).\n";

int cmd_info(int argc, char **argv)
{
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help || argc != 2)
		return cli_usage(help, info_usage);
	shmbus_bus *bus = cli_connect(bus_name, "info", false, NULL);
	if (!bus)
		return 1;
	struct shmbus_topic_info ti;
	struct shmbus_client_info pubs[64], subs[256];
	size_t np, ns;
	int rc = shmbus_topic_inspect(bus, argv[1], &ti, pubs, 64, &np, subs, 256, &ns);
	if (rc) {
		cli_fail("info", rc, argv[1]);
		shmbus_disconnect(bus);
		return 1;
	}
	char seg[32], maxm[32];
	human_size(seg, sizeof(seg), ti.segment_size);
	human_size(maxm, sizeof(maxm), ti.max_message_size);
	printf("topic:       %s\n", ti.name);
	printf("type:        %s\n", ti.type_name[0] ? ti.type_name : "(untyped)");
	printf("schema:      %llu bytes%s", (unsigned long long)ti.schema_size,
	       ti.schema_versions > 1 ? "" : "\n");
	if (ti.schema_versions > 1)
		printf(" (publishers brought %u schema versions of this type)\n",
		       ti.schema_versions);
	printf("layout:      %u slots of %s max (slot %u bytes), history %u, segment %s\n",
	       ti.slot_count, maxm, ti.slot_size, ti.history, seg);
	if (ti.grown)
		printf("grown:       %u times (this ring from sequence number %llu)\n", ti.grown,
		       (unsigned long long)ti.ring_base_seq);
	printf("integrity:   %s\n", ti.flags & SHMBUS_TOPIC_INTEGRITY ? "on" : "off");
	printf("published:   %llu sequence numbers\n", (unsigned long long)ti.next_seq);
	printf("waiting:     %u\n", ti.waiters);
	printf("broker:      %llu bytes for this topic\n", (unsigned long long)ti.broker_bytes);
	printf("publishers:  %zu\n", np);
	if (np)
		printf("  %8s %6s %12s %8s\n", "PID", "ID", "PUBLISHED", "SKIPPED");
	for (size_t i = 0; i < np; i++)
		printf("  %8d %6u %12llu %8llu\n", pubs[i].pid, pubs[i].id,
		       (unsigned long long)pubs[i].count, (unsigned long long)pubs[i].lost);
	printf("subscribers: %zu\n", ns);
	if (ns)
		printf("  %8s %6s %12s %10s %10s %10s\n", "PID", "SLOT", "RECEIVED", "LOST", "LAG",
		       "REJECTED");
	for (size_t i = 0; i < ns; i++)
		printf("  %8d %6u %12llu %10llu %10llu %10llu\n", subs[i].pid, subs[i].id,
		       (unsigned long long)subs[i].count, (unsigned long long)subs[i].lost,
		       (unsigned long long)subs[i].lag, (unsigned long long)subs[i].rejected);
	shmbus_disconnect(bus);
	return 0;
}
