/*
 * py_baseline.c - shmbus-py-baseline: the C side of the Python benchmark
 * (bench/python_bench.py runs both and compares): in one process, publish a
 * batch, then time taking it, for a 64 B untyped message, a typed Imu
 * (generated take: unpack with protobuf-c) and an image view (generated
 * view_data: the pixels in place, first byte read, release) at three
 * sizes. Prints one line per case: "CASE SIZE ns,ns,..." (per message,
 * one figure per batch).
 *
 *   shmbus-py-baseline BUS BATCHES
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmbus/shmbus.h>

#include "now.h"
#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"

#define BATCH 32

static int fail(const char *what, int rc)
{
	fprintf(stderr, "shmbus-py-baseline: %s: %s: %s\n", what, shmbus_strerror(rc),
		shmbus_errmsg());
	return 1;
}

static void print_row(const char *name, size_t size, const double *v, int n)
{
	printf("%s %zu ", name, size);
	for (int i = 0; i < n; i++)
		printf("%s%.1f", i ? "," : "", v[i]);
	printf("\n");
}

static int take64(shmbus_bus *bus, int batches, double *v)
{
	struct shmbus_topic_options t;
	shmbus_topic_options_init(&t);
	t.max_message_size = 64;
	t.slot_count = 64;
	shmbus_pub *pub;
	shmbus_sub *sub;
	int rc = shmbus_pub_open(bus, "py-bench/take64", &t, NULL, &pub);
	if (rc)
		return fail("pub_open", rc);
	if ((rc = shmbus_sub_open(bus, "py-bench/take64", &t, NULL, &sub))) {
		shmbus_pub_close(pub);
		return fail("sub_open", rc);
	}
	unsigned char msg[64] = {1}, buf[64];
	for (int b = 0; b < batches && !rc; b++) {
		for (int i = 0; i < BATCH && !rc; i++)
			rc = shmbus_pub_send(pub, msg, sizeof(msg), NULL);
		int64_t t0 = now_mono_ns();
		for (int i = 0; i < BATCH && !rc; i++)
			rc = shmbus_sub_take(sub, buf, sizeof(buf), NULL);
		v[b] = (double)(now_mono_ns() - t0) / BATCH;
	}
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	if (rc)
		return fail("take64", rc);
	print_row("c_take", 64, v, batches);
	return 0;
}

static int take_imu(shmbus_bus *bus, int batches, double *v)
{
	shmbus_pub *pub;
	shmbus_sub *sub;
	struct shmbus_topic_options t;
	shmbus_topic_options_init(&t);
	t.slot_count = 64;
	int rc = shmbus__msgs__imu__pub_open(bus, "py-bench/imu", &t, NULL, &pub);
	if (rc)
		return fail("imu pub_open", rc);
	if ((rc = shmbus__msgs__imu__sub_open(bus, "py-bench/imu", NULL, NULL, &sub))) {
		shmbus_pub_close(pub);
		return fail("imu sub_open", rc);
	}
	/* The same sample as python_bench.py's. */
	Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
	Shmbus__Msgs__Quaternion q = SHMBUS__MSGS__QUATERNION__INIT;
	Shmbus__Msgs__Vector3 w = SHMBUS__MSGS__VECTOR3__INIT, a = SHMBUS__MSGS__VECTOR3__INIT;
	Shmbus__Msgs__Imu imu = SHMBUS__MSGS__IMU__INIT;
	double cov[9];
	for (int i = 0; i < 9; i++)
		cov[i] = i % 4 == 0 ? 0.01 : 0.0;
	hdr.stamp_ns = 1700000000000000000;
	hdr.frame_id = (char *)"imu_link";
	q.w = 1.0;
	w.x = 0.1, w.y = 0.2, w.z = 0.3;
	a.x = 0.01, a.y = 0.02, a.z = 9.81;
	imu.header = &hdr;
	imu.orientation = &q;
	imu.angular_velocity = &w;
	imu.linear_acceleration = &a;
	imu.n_orientation_covariance = imu.n_angular_velocity_covariance =
		imu.n_linear_acceleration_covariance = 9;
	imu.orientation_covariance = imu.angular_velocity_covariance =
		imu.linear_acceleration_covariance = cov;
	size_t size = shmbus__msgs__imu__get_packed_size(&imu);
	double sink = 0;
	for (int b = 0; b < batches && !rc; b++) {
		for (int i = 0; i < BATCH && !rc; i++)
			rc = shmbus__msgs__imu__publish(pub, &imu, NULL);
		int64_t t0 = now_mono_ns();
		for (int i = 0; i < BATCH && !rc; i++) {
			Shmbus__Msgs__Imu *m;
			rc = shmbus__msgs__imu__take(sub, NULL, &m, NULL);
			if (!rc) {
				sink += m->linear_acceleration->z;
				shmbus__msgs__imu__free(m, NULL);
			}
		}
		v[b] = (double)(now_mono_ns() - t0) / BATCH;
	}
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	if (rc)
		return fail("imu take", rc);
	if (sink <= 0)
		return fail("imu take: wrong values", SHMBUS_EBADMSG);
	print_row("c_take_imu", size, v, batches);
	return 0;
}

static int image_view(shmbus_bus *bus, uint32_t height, uint32_t width, int batches, double *v)
{
	char topic[64];
	size_t pixels = (size_t)height * width * 4;
	snprintf(topic, sizeof(topic), "py-bench/image%zu", pixels);
	struct shmbus_topic_options t;
	shmbus_topic_options_init(&t);
	t.slot_count = 4;
	t.max_message_size = (uint32_t)pixels + 256;
	shmbus_pub *pub;
	shmbus_sub *sub;
	int rc = shmbus__msgs__image__pub_open(bus, topic, &t, NULL, &pub);
	if (rc)
		return fail("image pub_open", rc);
	if ((rc = shmbus__msgs__image__sub_open(bus, topic, NULL, NULL, &sub))) {
		shmbus_pub_close(pub);
		return fail("image sub_open", rc);
	}
	Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT;
	img.width = width;
	img.height = height;
	img.encoding = (char *)"rgba8";
	img.step = width * 4;
	unsigned sink = 0;
	for (int b = 0; b < batches && !rc; b++) {
		/* Published in place: only the first pixel is written. */
		struct shmbus_typed_loan loan;
		rc = shmbus__msgs__image__loan_data(pub, &img, pixels, &loan);
		if (!rc) {
			loan.field[0] = (uint8_t)b;
			rc = shmbus__msgs__image__publish_loan(pub, &loan, NULL);
		}
		int64_t t0 = now_mono_ns();
		Shmbus__Msgs__Image *m;
		struct shmbus_typed_view tv;
		if (!rc && !(rc = shmbus__msgs__image__view_data(sub, NULL, &m, &tv))) {
			sink += tv.field[0] + m->width;
			rc = shmbus__msgs__image__view_release(sub, m, NULL, &tv);
		}
		v[b] = (double)(now_mono_ns() - t0);
	}
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	if (rc)
		return fail("image view", rc);
	if (sink == 0)
		return fail("image view: wrong values", SHMBUS_EBADMSG);
	print_row("c_image_view", pixels, v, batches);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: shmbus-py-baseline BUS BATCHES\n");
		return 2;
	}
	int batches = atoi(argv[2]);
	if (batches < 1 || batches > 1000000)
		batches = 1000;
	double *v = malloc(sizeof(double) * (size_t)batches);
	shmbus_bus *bus;
	int rc = v ? shmbus_connect(argv[1], NULL, &bus) : SHMBUS_ENOMEM;
	if (rc)
		return fail("connect", rc);
	rc = take64(bus, batches, v) || take_imu(bus, batches, v) ||
	     image_view(bus, 128, 128, batches, v) || image_view(bus, 512, 512, batches, v) ||
	     image_view(bus, 1024, 2048, batches, v);
	shmbus_disconnect(bus);
	free(v);
	return rc;
}
