/*
 * bus_helper - the bus side of the Foxglove tests: real publishers and
 * subscribers on a real bus, driven one command per line on stdin by the
 * test (which drives the WebSocket side), one JSON line per command on
 * stdout.
 *
 *   imu TOPIC N               create an Imu topic (1024 slots) and publish
 *                             N samples: header.stamp_ns = i + 1,
 *                             angular_velocity.x = i
 *   image TOPIC W H           publish one foxglove.RawImage, rgb8, pixels
 *                             written in place: byte k = (k * 7 + (k >> 11)) & 255
 *   create TOPIC              create an Imu topic; reply with CLOCK_REALTIME
 *                             just before and after
 *   flood TOPIC SIZE N HZ FIRST [SLOTS]  publish N foxglove.RawImage of
 *                             SIZE data bytes at HZ (absolute deadlines),
 *                             width = FIRST, FIRST + 1, ..., every data
 *                             byte of the k-th = k & 255 (k from 0); a new
 *                             topic gets SLOTS slots (default 64)
 *   take TOPIC N MS           subscribe from the topic's first message and
 *                             return N messages as JSON (pbjson, from the
 *                             topic's schema), waiting at most MS
 *   quit
 *
 * Publishers stay open until quit. Errors: {"error": "..."}.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "foxglove/image.shmbus.h"
#include "now.h"
#include "pbjson.h"
#include "shmbus/msgs/imu.shmbus.h"

#define MAX_PUBS 64

static shmbus_bus *bus;
static shmbus_pub *pubs[MAX_PUBS];
static size_t n_pubs;

static void reply(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	printf("%s\n", s ? s : "{\"error\":\"out of memory\"}");
	fflush(stdout);
	free(s);
	json_decref(j);
}

static void fail(const char *what, int rc)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "%s: %s: %s", what, shmbus_strerror(rc), shmbus_errmsg());
	reply(json_pack("{s:s}", "error", msg));
}

static void keep(shmbus_pub *p)
{
	if (n_pubs < MAX_PUBS)
		pubs[n_pubs++] = p;
	else
		shmbus_pub_close(p);
}

static int open_imu(const char *topic, shmbus_pub **pub)
{
	struct shmbus_topic_options to;

	shmbus_topic_options_init(&to);
	to.slot_count = 1024;
	to.max_message_size = 1024;
	to.history = 1;
	return shmbus__msgs__imu__pub_open(bus, topic, &to, NULL, pub);
}

static void cmd_imu(const char *topic, long n)
{
	shmbus_pub *pub;
	int rc = open_imu(topic, &pub);

	if (rc) {
		fail(topic, rc);
		return;
	}
	for (long i = 0; i < n && rc == SHMBUS_OK; i++) {
		Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Imu imu = SHMBUS__MSGS__IMU__INIT;
		Shmbus__Msgs__Vector3 w = SHMBUS__MSGS__VECTOR3__INIT;

		hdr.stamp_ns = i + 1;
		hdr.frame_id = (char *)"imu_link";
		w.x = (double)i;
		imu.header = &hdr;
		imu.angular_velocity = &w;
		rc = shmbus__msgs__imu__publish(pub, &imu, NULL);
	}
	keep(pub);
	if (rc)
		fail("publish", rc);
	else
		reply(json_pack("{s:I}", "published", (json_int_t)n));
}

static int open_image(const char *topic, size_t bytes, uint32_t slots, shmbus_pub **pub)
{
	struct shmbus_topic_options to;

	shmbus_topic_options_init(&to);
	to.slot_count = slots;
	to.max_message_size = (uint32_t)bytes + 4096;
	to.history = 1;
	return foxglove__raw_image__pub_open(bus, topic, &to, NULL, pub);
}

static void cmd_image(const char *topic, uint32_t w, uint32_t h)
{
	Foxglove__RawImage img = FOXGLOVE__RAW_IMAGE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	struct shmbus_typed_loan loan;
	size_t bytes = (size_t)w * h * 3;
	shmbus_pub *pub;
	int rc = open_image(topic, bytes, 4, &pub);

	if (rc) {
		fail(topic, rc);
		return;
	}
	ts.seconds = 1700000000;
	ts.nanos = 123456789;
	img.timestamp = &ts;
	img.frame_id = (char *)"camera_optical";
	img.width = w;
	img.height = h;
	img.encoding = (char *)"rgb8";
	img.step = w * 3;
	rc = foxglove__raw_image__loan_data(pub, &img, bytes, &loan);
	if (rc == SHMBUS_OK) {
		for (size_t k = 0; k < bytes; k++)
			loan.field[k] = (uint8_t)((k * 7 + (k >> 11)) & 255);
		rc = foxglove__raw_image__publish_loan(pub, &loan, NULL);
	}
	keep(pub);
	if (rc)
		fail("publish", rc);
	else
		reply(json_pack("{s:i, s:I}", "published", 1, "bytes", (json_int_t)bytes));
}

static void cmd_create(const char *topic)
{
	int64_t t0 = now_real_ns(), t1;
	shmbus_pub *pub;
	int rc = open_imu(topic, &pub);

	t1 = now_real_ns();
	if (rc) {
		fail(topic, rc);
		return;
	}
	keep(pub);
	reply(json_pack("{s:I, s:I}", "t0_ns", (json_int_t)t0, "t1_ns", (json_int_t)t1));
}

/* Remove a topic (as `shmbus rm` does): its name goes at once, the
 * publishers it still has keep their mapping. */
static void cmd_remove(const char *topic)
{
	int64_t t0 = now_real_ns();
	int rc = shmbus_topic_remove(bus, topic);

	if (rc) {
		fail(topic, rc);
		return;
	}
	reply(json_pack("{s:I}", "t0_ns", (json_int_t)t0));
}

static void cmd_flood(const char *topic, size_t size, long n, long hz, long first, long slots)
{
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	int64_t period = 1000000000 / (hz > 0 ? hz : 1), start, next;
	long published = 0, failed = 0;
	shmbus_pub *pub;
	int rc = open_image(topic, size, (uint32_t)slots, &pub);

	if (rc) {
		fail(topic, rc);
		return;
	}
	start = next = now_mono_ns();
	for (long i = 0; i < n; i++) {
		Foxglove__RawImage img = FOXGLOVE__RAW_IMAGE__INIT;
		struct shmbus_typed_loan loan;

		img.timestamp = &ts;
		img.width = (uint32_t)(first + i);
		img.height = 1;
		img.encoding = (char *)"mono8";
		img.step = (uint32_t)size;
		rc = foxglove__raw_image__loan_data(pub, &img, size, &loan);
		if (rc == SHMBUS_OK) {
			memset(loan.field, (int)(i & 255), size);
			rc = foxglove__raw_image__publish_loan(pub, &loan, NULL);
		}
		if (rc == SHMBUS_OK)
			published++;
		else
			failed++;
		next += period;
		while (now_sleep_until(next) == EINTR)
			;
	}
	keep(pub);
	reply(json_pack("{s:I, s:I, s:I}", "published", (json_int_t)published, "failed",
			(json_int_t)failed, "elapsed_ns", (json_int_t)(now_mono_ns() - start)));
}

static void cmd_take(const char *topic, long n, long ms)
{
	struct shmbus_sub_options so;
	int64_t deadline = now_mono_ns() + ms * 1000000;
	json_t *list = json_array();
	pbjson_schema *schema = NULL;
	const void *fds;
	size_t fds_len = 0;
	char err[256];
	shmbus_sub *sub;
	int rc;

	shmbus_sub_options_init(&so);
	so.start = SHMBUS_START_FIRST;
	rc = shmbus_sub_open(bus, topic, NULL, &so, &sub);
	if (rc) {
		json_decref(list);
		fail(topic, rc);
		return;
	}
	fds = shmbus_sub_schema(sub, &fds_len);
	if (!fds || pbjson_schema_load(fds, fds_len, &schema, err, sizeof(err)) != PBJSON_OK) {
		json_decref(list);
		shmbus_sub_close(sub);
		reply(json_pack("{s:s}", "error", "the topic has no schema that loads"));
		return;
	}
	while ((long)json_array_size(list) < n) {
		static uint8_t buf[1 << 20];
		struct shmbus_msg_info info;
		int64_t left = deadline - now_mono_ns();
		json_t *msg;

		rc = shmbus_sub_take(sub, buf, sizeof(buf), &info);
		if (rc == SHMBUS_EAGAIN) {
			if (left <= 0)
				break;
			shmbus_sub_wait(sub, left);
			continue;
		}
		if (rc)
			break;
		if (pbjson_decode(schema, shmbus_sub_type_name(sub), buf, info.size, NULL, &msg, err,
				  sizeof(err)) != PBJSON_OK)
			msg = json_pack("{s:s}", "undecodable", err);
		json_array_append_new(list, msg);
	}
	reply(json_pack("{s:o, s:s, s:I}", "messages", list, "type", shmbus_sub_type_name(sub),
			"max_message_size", (json_int_t)shmbus_sub_max_message_size(sub)));
	pbjson_schema_free(schema);
	shmbus_sub_close(sub);
}

int main(void)
{
	char line[1024];
	int rc = shmbus_connect(NULL, NULL, &bus);

	if (rc) {
		fail("connect", rc);
		return 1;
	}
	reply(json_pack("{s:b}", "ready", 1));
	while (fgets(line, sizeof(line), stdin)) {
		char verb[32], topic[256];
		long a = 0, b = 0, c = 0, d = 0, e = 64;
		int n = sscanf(line, "%31s %255s %ld %ld %ld %ld %ld", verb, topic, &a, &b, &c, &d,
			       &e);

		if (n >= 1 && strcmp(verb, "quit") == 0)
			break;
		if (n == 3 && strcmp(verb, "imu") == 0)
			cmd_imu(topic, a);
		else if (n == 4 && strcmp(verb, "image") == 0)
			cmd_image(topic, (uint32_t)a, (uint32_t)b);
		else if (n == 2 && strcmp(verb, "create") == 0)
			cmd_create(topic);
		else if (n == 2 && strcmp(verb, "remove") == 0)
			cmd_remove(topic);
		else if ((n == 6 || n == 7) && strcmp(verb, "flood") == 0)
			cmd_flood(topic, (size_t)a, b, c, d, e);
		else if (n == 4 && strcmp(verb, "take") == 0)
			cmd_take(topic, a, b);
		else
			reply(json_pack("{s:s}", "error", "unknown command"));
	}
	for (size_t i = 0; i < n_pubs; i++)
		shmbus_pub_close(pubs[i]);
	shmbus_disconnect(bus);
	return 0;
}
