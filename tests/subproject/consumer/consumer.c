/*
 * consumer.c - sends one message to itself over a bus of its own (the
 * broker starts by itself), and says "ok" when it came back intact.
 */
#define _GNU_SOURCE
#include <shmbus/shmbus.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *bus_name = argc > 1 ? argv[1] : "consumer";
	shmbus_bus *bus;
	shmbus_pub *pub;
	shmbus_sub *sub;
	if (shmbus_connect(bus_name, NULL, &bus) ||
	    shmbus_pub_open(bus, "hello", NULL, NULL, &pub) ||
	    shmbus_sub_open(bus, "hello", NULL, NULL, &sub)) {
		fprintf(stderr, "consumer: %s\n", shmbus_errmsg());
		return 1;
	}
	char got[32] = "";
	int rc = shmbus_pub_send(pub, "hello", 6, NULL);
	if (rc == 0)
		rc = shmbus_sub_wait(sub, 10000000000ll);
	if (rc == 0)
		rc = shmbus_sub_take(sub, got, sizeof(got), NULL);
	if (rc || strcmp(got, "hello") != 0) {
		fprintf(stderr, "consumer: %s\n", rc ? shmbus_errmsg() : "wrong message");
		return 1;
	}
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	int broker = shmbus_broker_pid(bus);
	shmbus_disconnect(bus);
	if (broker > 0)
		kill(broker, SIGTERM); /* a bus of its own: done with it */
	puts("ok");
	return 0;
}
