/*
 * adv.h - what the adversary tests share beyond tests/harness.h: a runtime
 * directory a second user can reach, that second user, brokers started
 * with a policy (and chosen limits), processes run as the second user, and
 * a victim subscriber process that reports what it saw. Nothing here knows
 * the protocol or the layout (that is hostile.c).
 */
#ifndef SHMBUS_TEST_ADV_H
#define SHMBUS_TEST_ADV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "hostile.h"

#define SEC 1000000000ll

/* The second user, when adv_setup could make it. */
extern struct h_user adv_other;
extern bool adv_have_other;

/* Suite setup: a runtime directory of this program's own in /tmp (the
 * buses of every test live there, so teardown can stop them), and the
 * second user if need_other. 0 or 1 (for CUnit). */
int adv_setup(const char *tag, bool need_other);
/* Suite teardown: stop every broker left in the directory, remove it and
 * the second user. */
int adv_teardown(void);
/* In a test that needs the second user: true (after saying SKIPPED) when
 * there is none; the program then exits 77 (adv_exit). */
bool adv_skip_without_other(void);
int adv_exit(int rc);
const char *adv_dir(void);

/* Start `bus`'s broker with a policy file holding `policy` (NULL: none),
 * under a descriptor limit `nofile` (0: inherited) and umask `mask` (-1:
 * inherited). shmbusd's exit status (0: it serves), its output in out. */
int adv_start_broker(const char *bus, const char *policy, int nofile, int mask, char *out,
		     size_t cap);
/* Start bus's broker with a policy, every "USER" in its text the second
 * user's name; shmbusd's exit status (its output printed on failure). */
int adv_policy_bus(const char *bus, const char *text);

/* kill -9 the bus's broker and wait until it is gone. */
void adv_kill_broker(const char *bus);

/* Stop the bus and check nothing of it is left (h_stop_bus), starting a
 * broker first if none runs, so that what a test left behind (a killed
 * broker's topics) is removed even when the test failed half way. */
void adv_stop_bus(const char *bus);

/* Connect with a key file (NULL: none); autostart as the library does. */
shmbus_bus *adv_connect(const char *bus, const char *key_file, int *rc);

/* h_fork, the child running as `as` (NULL: this user). */
pid_t adv_fork_as(const struct h_user *as, int (*fn)(void *arg, int out), void *arg, int *out);

/* Wait until `topic` shows at least n subscribers (shmbus info), at most
 * timeout_ms. */
bool adv_wait_subscribers(const char *bus, const char *topic, unsigned n, int timeout_ms);

/* Publish a NUL-terminated string. */
int adv_send(shmbus_pub *pub, const char *text);

/* A publisher process that publishes `publish` messages ("m-0", "m-1",
 * ...), then takes a loan and holds it until killed. Its pid once it
 * holds the loan, or -1. */
struct adv_holder {
	const char *bus, *topic, *key_file;
	const struct shmbus_topic_options *topic_opts; /* NULL: defaults */
	int publish;
};
pid_t adv_holder_start(const struct adv_holder *h);

/* A victim: a subscriber process that takes everything it can and says
 * what it saw once told to, or when it takes the message "stop". */
struct adv_victim {
	const char *bus, *topic, *key_file;
	int64_t stall_ns;     /* 0: the library's default */
	bool start_last;      /* SHMBUS_START_LAST, last_n messages */
	uint32_t last_n;
	bool view;            /* views, reading every byte of each message */
	bool forever;         /* blocks in shmbus_sub_wait(sub, -1) */
	const struct h_user *as;
	const char *expect;   /* messages not starting with it (nor "stop")
	                         are counted foreign */
	pid_t pid;            /* set by adv_victim_start */
	int out, ctl, peer;
};

struct adv_report {
	int open_rc;
	uint64_t received, lost, rejected;
	uint64_t dups;            /* sequence numbers delivered twice */
	uint64_t oversize;        /* sizes above the topic's maximum handed out */
	uint64_t foreign;         /* messages not starting with `expect` */
	int64_t max_latency_ns;   /* from publish (CLOCK_REALTIME) to take */
	int64_t first_loss_ns;    /* CLOCK_MONOTONIC when it first saw a loss */
	char last[64];            /* the last message, as a string */
};

/* Start it; true once it has subscribed (else its open status is in
 * r->open_rc if r is given). */
bool adv_victim_start(struct adv_victim *v, struct adv_report *r);
/* Ask for its report (a victim in a wait forever reports when it takes
 * "stop"); false if none came within timeout_ms. */
bool adv_victim_report(struct adv_victim *v, struct adv_report *r, int timeout_ms);
/* Let it go; its exit status (128 + signal if it died of one, -1 if it
 * had to be killed). */
int adv_victim_end(struct adv_victim *v);

#endif
