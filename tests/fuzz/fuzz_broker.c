/*
 * fuzz_broker.c - libFuzzer target: the broker's request handler, fed a
 * client's arbitrary byte stream cut into frames as the broker cuts it. The
 * client is another user, admitted by a policy that allows everything
 * within small limits, so the requests reach every path without the fuzzer
 * making gigabytes of topics. Descriptors the handler hands out are closed;
 * the broker's state is reset now and then.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct broker b;
static unsigned runs;
static pid_t gone; /* a process that has exited: what it held goes at once */

static void setup(void)
{
	char err[256];
	static const char policy[] = "allow * * *\nlimit * topics=4 bytes=4M connections=8\n";
	memset(&b, 0, sizeof(b));
	b.uid = 0;
	if (policy_parse(&b.policy, "fuzz", policy, 0, err, sizeof(err)) ||
	    registry_open(&b.reg, "fuzz", NULL, err, sizeof(err)))
		abort();
	if (!gone) {
		gone = fork();
		if (gone == 0)
			_exit(0);
		waitpid(gone, NULL, 0);
	}
	/* The user's entry exists from the start: not an allocation of the
	 * first input that lives on. */
	client_drop(&b, client_new(&b, -1, gone, 4242, 4242));
}

static void teardown(void)
{
	broker_free(&b);
	registry_close(&b.reg, false);
	policy_free(&b.policy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (runs++ % 1000 == 0) {
		if (runs > 1)
			teardown();
		setup();
	}
	struct client *c = client_new(&b, -1, gone, 4242, 4242);
	if (!c)
		return 0;
	size_t off = 0;
	while (size - off >= sizeof(struct proto_hdr)) {
		struct proto_hdr h;
		char err[256];
		memcpy(&h, data + off, sizeof(h));
		if (proto_check_hdr(&h, err, sizeof(err)) || h.len > size - off - sizeof(h))
			break;
		size_t flen = sizeof(h) + h.len;
		struct proto_buf out = { 0 };
		int fds[PROTO_MAX_FDS], nfds = 0;
		broker_handle_frame(&b, c, data + off, flen, &out, fds, &nfds);
		for (int i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		proto_buf_free(&out);
		off += flen;
	}
	client_drop(&b, c);
	return 0;
}
