/*
 * common.c - the demo processes' shared plumbing (see common.h).
 */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/timestamp.pb-c.h"

volatile sig_atomic_t pipeline_stop;

static void on_signal(int sig)
{
	(void)sig;
	pipeline_stop = 1;
}

void pipeline_init(int argc, char **argv, const char *prog, struct pipeline_args *args)
{
	static const struct option longopts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa;
	int c;

	args->bus = NULL;
	args->duration_s = 0;
	while ((c = getopt_long(argc, argv, "b:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			args->bus = optarg;
			break;
		case 'd':
			args->duration_s = strtod(optarg, NULL);
			break;
		case 'h':
			printf("usage: %s [--bus NAME] [--duration SECONDS]\n", prog);
			exit(0);
		default:
			fprintf(stderr, "usage: %s [--bus NAME] [--duration SECONDS]\n", prog);
			exit(2);
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: waits return early */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

shmbus_bus *pipeline_connect(const char *prog, const struct pipeline_args *args)
{
	struct shmbus_connect_options o;
	shmbus_bus *bus;
	int rc;

	shmbus_connect_options_init(&o);
	rc = shmbus_connect(args->bus, &o, &bus);
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "%s: cannot connect: %s: %s\n", prog, shmbus_strerror(rc), shmbus_errmsg());
		exit(1);
	}
	return bus;
}

void camera_topic_options(struct shmbus_topic_options *o)
{
	shmbus_topic_options_init(o);
	o->slot_count = 8; /* ~0.27 s of frames: a slow reader is lapped, not obeyed */
	o->max_message_size = CAMERA_FRAME_BYTES + 4096; /* pixels + the other fields */
	o->history = 1;
}

void imu_topic_options(struct shmbus_topic_options *o)
{
	shmbus_topic_options_init(o);
	o->slot_count = 1024; /* ~1 s of samples */
	o->max_message_size = 1024;
	o->history = 64;
}

void stats_topic_options(struct shmbus_topic_options *o)
{
	shmbus_topic_options_init(o);
	o->slot_count = 64;
	o->max_message_size = 1024;
	o->history = 8;
}

void lidar_topic_options(struct shmbus_topic_options *o)
{
	shmbus_topic_options_init(o);
	o->slot_count = 8;
	o->max_message_size = LIDAR_CLOUD_BYTES + 4096;
	o->history = 1;
}

void small_topic_options(struct shmbus_topic_options *o, uint32_t history)
{
	shmbus_topic_options_init(o);
	o->slot_count = 64;
	o->max_message_size = 4096;
	o->history = history;
}

void stamp_from_ns(struct Google__Protobuf__Timestamp *ts, int64_t ns)
{
	ts->seconds = ns / 1000000000;
	ts->nanos = (int32_t)(ns % 1000000000);
}

int64_t stamp_to_ns(const struct Google__Protobuf__Timestamp *ts)
{
	return ts ? ts->seconds * 1000000000 + ts->nanos : 0;
}

void sleep_until(int64_t t)
{
	while (!pipeline_stop && now_sleep_until(t) == EINTR)
		;
}

bool pipeline_done(const struct pipeline_args *args, int64_t start_ns)
{
	if (pipeline_stop)
		return true;
	return args->duration_s > 0 &&
	       now_mono_ns() - start_ns >= (int64_t)(args->duration_s * 1e9);
}
