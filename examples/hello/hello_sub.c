/*
 * hello_sub: the smallest shmbus subscriber. Prints COUNT messages from the
 * topic "hello", blocking until each arrives (at most TIMEOUT_S each).
 *
 *   hello_sub [COUNT] [TIMEOUT_S]
 */
#include <shmbus/shmbus.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 10;
	int timeout_s = argc > 2 ? atoi(argv[2]) : 10;
	struct shmbus_connect_options copts;
	shmbus_bus *bus;
	shmbus_sub *sub;

	shmbus_connect_options_init(&copts);
	int rc = shmbus_connect(NULL, &copts, &bus);
	if (rc) {
		fprintf(stderr, "hello_sub: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		return 1;
	}

	/* Create the topic if the publisher is not up yet, with the same type. */
	struct shmbus_topic_options topts;
	shmbus_topic_options_init(&topts);
	topts.type_name = "hello.Text";
	topts.max_message_size = 256;
	struct shmbus_sub_options sopts;
	shmbus_sub_options_init(&sopts);
	sopts.create_if_missing = true;
	rc = shmbus_sub_open(bus, "hello", &topts, &sopts, &sub);
	if (rc) {
		fprintf(stderr, "hello_sub: %s: %s\n", shmbus_strerror(rc), shmbus_errmsg());
		shmbus_disconnect(bus);
		return 1;
	}

	for (int got = 0; got < count;) {
		char buf[256];
		struct shmbus_msg_info info;
		rc = shmbus_sub_wait(sub, (int64_t)timeout_s * 1000000000);
		if (rc) {
			fprintf(stderr, "hello_sub: wait: %s\n", shmbus_strerror(rc));
			break;
		}
		while ((rc = shmbus_sub_take(sub, buf, sizeof(buf), &info)) == 0) {
			printf("seq %llu from publisher %u (%llu lost before): %.*s\n",
			       (unsigned long long)info.seq, info.publisher_id,
			       (unsigned long long)info.lost, (int)info.size, buf);
			got++;
		}
		rc = rc == SHMBUS_EAGAIN ? 0 : rc;
		if (rc)
			break;
	}
	fflush(stdout);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	return rc ? 1 : 0;
}
