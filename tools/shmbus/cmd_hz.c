/*
 * cmd_hz.c - `shmbus hz TOPIC` and `shmbus bw TOPIC`: a topic's message
 * rate and bandwidth over a window of recent messages, reported once a
 * second, like `ros2 topic hz` / `ros2 topic bw`. Periods are measured
 * between the messages' publish times (stamped by the bus), so they do
 * not depend on when this process gets to run.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char hz_usage[] =
	"usage: shmbus hz [--bus NAME] TOPIC [-w WINDOW] [-n COUNT] [--duration S]\n"
	"                 [--wait]\n"
	"\n"
	"Once a second, the rate of TOPIC over the last WINDOW messages (default\n"
	"10000): one line\n"
	"  rate R Hz  period mean M ms  min A ms  max B ms  std dev D ms  window N  lost L\n"
	"where periods are between consecutive publish times (gaps with lost\n"
	"messages left out) and L counts the messages lost since the start. The last\n"
	"line, printed on exit, starts with \"total:\".\n"
	"\n"
	"  -w, --window N     messages in the window\n"
	"  -n, --count COUNT  exit after COUNT messages\n"
	"  --duration S       exit after S seconds\n"
	"  --wait             if the topic does not exist yet, wait for it\n";

static const char bw_usage[] =
	"usage: shmbus bw [--bus NAME] TOPIC [-w WINDOW] [-n COUNT] [--duration S]\n"
	"                 [--wait]\n"
	"\n"
	"Once a second, the bandwidth of TOPIC over the last WINDOW messages (default\n"
	"10000): one line\n"
	"  bandwidth X B/s  size mean M B  min A B  max B B  window N  lost L\n"
	"(with kB, MB or GB in place of B as the numbers grow; 1 kB = 1000 B). The\n"
	"bandwidth is the window's payload bytes over the time its publish times\n"
	"span; L counts the messages lost since the start. The last line, printed on\n"
	"exit, starts with \"total:\".\n"
	"\n"
	"  -w, --window N     messages in the window\n"
	"  -n, --count COUNT  exit after COUNT messages\n"
	"  --duration S       exit after S seconds\n"
	"  --wait             if the topic does not exist yet, wait for it\n";

struct sample {
	int64_t t;     /* publish time, ns */
	uint64_t size;
	bool gap;      /* messages were lost just before this one */
};

struct window {
	struct sample *s;
	size_t cap, n, head; /* oldest at head */
};

static const struct sample *at(const struct window *w, size_t i)
{
	return &w->s[(w->head + i) % w->cap];
}

static void add(struct window *w, struct sample x)
{
	if (w->n < w->cap) {
		w->s[(w->head + w->n++) % w->cap] = x;
	} else {
		w->s[w->head] = x;
		w->head = (w->head + 1) % w->cap;
	}
}

static void scale(double v, char *buf, size_t len, const char *unit)
{
	static const char *const pre[] = { "", "k", "M", "G" };
	int i = 0;
	while (v >= 1000 && i < 3) {
		v /= 1000;
		i++;
	}
	snprintf(buf, len, "%.2f %s%s", v, pre[i], unit);
}

static void report(bool bw, const struct window *w, uint64_t lost, bool final)
{
	const char *lead = final ? "total: " : "";
	if (w->n < 2) {
		printf("%s%s\n", lead, w->n ? "one message so far" : "no messages");
		fflush(stdout);
		return;
	}
	if (!bw) {
		double sum = 0, sumsq = 0, mn = INFINITY, mx = 0;
		size_t k = 0;
		for (size_t i = 1; i < w->n; i++) {
			if (at(w, i)->gap)
				continue;
			double d = (double)(at(w, i)->t - at(w, i - 1)->t) / 1e6;
			sum += d;
			sumsq += d * d;
			mn = d < mn ? d : mn;
			mx = d > mx ? d : mx;
			k++;
		}
		if (!k || sum <= 0) {
			printf("%sno period measured yet (messages lost or published at once)  "
			       "lost %" PRIu64 "\n", lead, lost);
		} else {
			double mean = sum / (double)k;
			double var = sumsq / (double)k - mean * mean;
			printf("%srate %.3f Hz  period mean %.3f ms  min %.3f ms  max %.3f ms  "
			       "std dev %.3f ms  window %zu  lost %" PRIu64 "\n",
			       lead, 1000.0 / mean, mean, mn, mx, sqrt(var > 0 ? var : 0), w->n, lost);
		}
	} else {
		uint64_t bytes = 0, mn = UINT64_MAX, mx = 0;
		for (size_t i = 0; i < w->n; i++) {
			uint64_t z = at(w, i)->size;
			if (i)
				bytes += z; /* the first message opens the span */
			mn = z < mn ? z : mn;
			mx = z > mx ? z : mx;
		}
		double span = (double)(at(w, w->n - 1)->t - at(w, 0)->t) / 1e9;
		char rate[32], mean[32], a[32], b[32];
		uint64_t all = bytes + at(w, 0)->size;
		scale((double)all / (double)w->n, mean, sizeof(mean), "B");
		scale((double)mn, a, sizeof(a), "B");
		scale((double)mx, b, sizeof(b), "B");
		if (span > 0) {
			scale((double)bytes / span, rate, sizeof(rate), "B/s");
			printf("%sbandwidth %s  size mean %s  min %s  max %s  window %zu  lost %" PRIu64
			       "\n", lead, rate, mean, a, b, w->n, lost);
		} else {
			printf("%sno time span measured yet  size mean %s  lost %" PRIu64 "\n", lead,
			       mean, lost);
		}
	}
	fflush(stdout);
}

static int run(bool bw, int argc, char **argv)
{
	const char *verb = bw ? "bw" : "hz";
	const char *usage = bw ? bw_usage : hz_usage;
	bool help;
	const char *bus_name = cli_common_options(&argc, argv, &help);
	if (help)
		return cli_usage(true, usage);
	const char *topic = NULL;
	uint64_t count = 0, wsize = 10000;
	double duration = 0;
	bool wait = false;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if ((v = cli_opt(argc, argv, &i, "--count", "-n"))) {
			if (!cli_u64(verb, "-n", v, &count))
				return 2;
		} else if ((v = cli_opt(argc, argv, &i, "--window", "-w"))) {
			if (!cli_u64(verb, "-w", v, &wsize))
				return 2;
			if (wsize < 2 || wsize > 10000000) {
				fprintf(stderr, "shmbus %s: the window is 2 to 10000000 messages\n", verb);
				return 2;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--duration", NULL))) {
			if (!cli_positive(verb, "--duration", v, &duration))
				return 2;
		} else if (strcmp(argv[i], "--wait") == 0) {
			wait = true;
		} else if (argv[i][0] == '-' || topic) {
			fprintf(stderr, "shmbus %s: unexpected argument '%s'\n%s", verb, argv[i], usage);
			return 2;
		} else {
			topic = argv[i];
		}
	}
	if (!topic) {
		fputs(usage, stderr);
		return 2;
	}
	cli_catch_signals();
	struct window w = { .cap = (size_t)wsize };
	w.s = malloc(w.cap * sizeof(*w.s));
	if (!w.s) {
		fprintf(stderr, "shmbus %s: out of memory\n", verb);
		return 1;
	}
	shmbus_bus *bus = cli_connect(bus_name, verb, false, NULL);
	if (!bus) {
		free(w.s);
		return 1;
	}
	int64_t start = now_mono_ns();
	int64_t end = duration > 0 ? start + (int64_t)(duration * 1e9) : INT64_MAX;
	shmbus_sub *sub;
	int rc = cli_sub_open(verb, bus, topic, NULL, wait, end, &sub, NULL);
	if (rc == SHMBUS_ENOTOPIC && wait) { /* stopped or out of time while waiting */
		shmbus_disconnect(bus);
		free(w.s);
		return 0;
	}
	if (rc) {
		cli_fail(verb, rc, topic);
		shmbus_disconnect(bus);
		free(w.s);
		return 1;
	}
	cli_interrupt_on_signal(sub, NULL, NULL);
	int64_t next_report = now_mono_ns() + 1000000000;
	uint64_t received = 0, lost = 0, at_last_report = 0;
	int status = 0;
	while (!cli_stopping() && (!count || received < count)) {
		int64_t now = now_mono_ns();
		if (now >= end)
			break;
		if (now >= next_report) {
			if (received == at_last_report) {
				printf("no new messages  lost %" PRIu64 "\n", lost);
				fflush(stdout);
			} else {
				report(bw, &w, lost, false);
			}
			at_last_report = received;
			next_report += 1000000000;
			if (next_report <= now) /* we were held up: do not catch up */
				next_report = now + 1000000000;
			continue;
		}
		int64_t until = next_report < end ? next_report : end;
		rc = shmbus_sub_wait(sub, until - now);
		if (rc == SHMBUS_ETIMEDOUT || rc == SHMBUS_EINTR)
			continue;
		if (rc) {
			status = cli_fail(verb, rc, topic);
			break;
		}
		struct shmbus_view view;
		while ((!count || received < count) && (rc = shmbus_sub_view(sub, &view)) == 0) {
			/* Only the header is used, which the view read consistently;
			 * an overwritten payload does not matter here. */
			struct sample x = { view.info.publish_ns, view.info.size, view.info.lost > 0 };
			lost += view.info.lost;
			if (shmbus_sub_release(sub, &view) == SHMBUS_ELAPPED)
				lost++; /* the library counts it lost: so do we */
			else {
				add(&w, x);
				received++;
			}
		}
		if (rc && rc != SHMBUS_EAGAIN) {
			status = cli_fail(verb, rc, topic);
			break;
		}
	}
	cli_interrupt_on_signal(NULL, NULL, NULL);
	if (!status)
		report(bw, &w, lost, true);
	shmbus_sub_close(sub);
	shmbus_disconnect(bus);
	free(w.s);
	return status;
}

int cmd_hz(int argc, char **argv)
{
	return run(false, argc, argv);
}

int cmd_bw(int argc, char **argv)
{
	return run(true, argc, argv);
}
