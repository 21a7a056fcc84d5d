/*
 * hello_pub: the smallest shmbus publisher. Publishes "hello N" on the
 * topic "hello" once a second (or COUNT times as fast as asked).
 *
 *   hello_pub [COUNT] [PERIOD_MS]
 */
#include <shmbus/shmbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 10;
	int period_ms = argc > 2 ? atoi(argv[2]) : 1000;
	struct shmbus_connect_options copts;
	shmbus_bus *bus;
	shmbus_pub *pub;

	/* Connects to $SHMBUS_BUS (or "default"), starting its broker if needed. */
	shmbus_connect_options_init(&copts);
	int rc = shmbus_connect(NULL, &copts, &bus);
	if (rc) {
		fprintf(stderr, "hello_pub: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		return 1;
	}

	struct shmbus_topic_options topts;
	shmbus_topic_options_init(&topts);
	topts.type_name = "hello.Text"; /* any name; typed topics use protobuf's */
	topts.max_message_size = 256;
	rc = shmbus_pub_open(bus, "hello", &topts, NULL, &pub);
	if (rc) {
		fprintf(stderr, "hello_pub: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		shmbus_disconnect(bus);
		return 1;
	}

	for (int i = 0; i < count; i++) {
		char msg[64];
		uint64_t seq;
		int n = snprintf(msg, sizeof(msg), "hello %d", i);
		rc = shmbus_pub_send(pub, msg, (size_t)n + 1, &seq);
		if (rc) {
			fprintf(stderr, "hello_pub: publish: %s\n", shmbus_strerror(rc));
			break;
		}
		printf("published seq %llu: %s\n", (unsigned long long)seq, msg);
		fflush(stdout);
		struct timespec ts = { period_ms / 1000, (long)(period_ms % 1000) * 1000000 };
		if (i + 1 < count)
			nanosleep(&ts, NULL);
	}
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return rc ? 1 : 0;
}
