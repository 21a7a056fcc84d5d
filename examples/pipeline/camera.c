/*
 * pipeline_camera - a simulated 1280x720 RGB camera at 30 Hz, published as
 * foxglove.RawImage (what Foxglove's Image panel draws) with its
 * foxglove.CameraCalibration. Each frame is rendered straight into the
 * topic's shared memory through the typed zero-copy loan
 * (foxglove__raw_image__loan_data): the 2.7 MB of pixels are written once,
 * where every subscriber reads them.
 *
 *   pipeline_camera [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <stdio.h>

#include "foxglove/image.shmbus.h"

/* A moving test pattern, so a viewer sees motion and a reader can check
 * rows. */
static void render(uint8_t *px, uint32_t frame)
{
	for (uint32_t y = 0; y < CAMERA_HEIGHT; y++) {
		uint8_t *row = px + (size_t)y * CAMERA_STEP;

		for (uint32_t x = 0; x < CAMERA_WIDTH; x++) {
			row[3 * x + 0] = (uint8_t)(x + frame * 4);
			row[3 * x + 1] = (uint8_t)(y + frame * 2);
			row[3 * x + 2] = (uint8_t)((x ^ y) + frame);
		}
	}
}

/* A pinhole camera with a 90 degree horizontal field of view, no
 * distortion: what the 3D panel needs to place the image. */
static int publish_calibration(shmbus_pub *pub, int64_t stamp_ns)
{
	static double d[5], k[9], r[9], p[12];
	const double f = CAMERA_WIDTH / 2.0, cx = CAMERA_WIDTH / 2.0, cy = CAMERA_HEIGHT / 2.0;
	Foxglove__CameraCalibration cal = FOXGLOVE__CAMERA_CALIBRATION__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	k[0] = f, k[2] = cx, k[4] = f, k[5] = cy, k[8] = 1;
	r[0] = r[4] = r[8] = 1;
	p[0] = f, p[2] = cx, p[5] = f, p[6] = cy, p[10] = 1;
	stamp_from_ns(&ts, stamp_ns);
	cal.timestamp = &ts;
	cal.frame_id = (char *)CAMERA_FRAME;
	cal.width = CAMERA_WIDTH;
	cal.height = CAMERA_HEIGHT;
	cal.distortion_model = (char *)"plumb_bob";
	cal.n_d = 5, cal.d = d;
	cal.n_k = 9, cal.k = k;
	cal.n_r = 9, cal.r = r;
	cal.n_p = 12, cal.p = p;
	return foxglove__camera_calibration__publish(pub, &cal, NULL);
}

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct shmbus_topic_options to;
	shmbus_bus *bus;
	shmbus_pub *pub, *cal_pub;
	uint64_t published = 0, failed = 0;
	int64_t start, next, period = 1000000000 / CAMERA_HZ;
	int rc;

	pipeline_init(argc, argv, "pipeline_camera", &args);
	bus = pipeline_connect("pipeline_camera", &args);
	camera_topic_options(&to);
	rc = foxglove__raw_image__pub_open(bus, CAMERA_TOPIC, &to, NULL, &pub);
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_camera: %s: %s: %s\n", CAMERA_TOPIC, shmbus_strerror(rc),
			shmbus_errmsg());
		shmbus_disconnect(bus);
		return 1;
	}
	small_topic_options(&to, 1);
	rc = foxglove__camera_calibration__pub_open(bus, CALIBRATION_TOPIC, &to, NULL, &cal_pub);
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_camera: %s: %s: %s\n", CALIBRATION_TOPIC,
			shmbus_strerror(rc), shmbus_errmsg());
		shmbus_pub_close(pub);
		shmbus_disconnect(bus);
		return 1;
	}
	start = next = now_mono_ns();
	for (uint32_t frame = 0; !pipeline_done(&args, start); frame++) {
		Foxglove__RawImage img = FOXGLOVE__RAW_IMAGE__INIT;
		Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
		struct shmbus_typed_loan loan;
		int64_t exposure = now_real_ns();

		stamp_from_ns(&ts, exposure);
		img.timestamp = &ts;
		img.frame_id = (char *)CAMERA_FRAME;
		img.width = CAMERA_WIDTH;
		img.height = CAMERA_HEIGHT;
		img.encoding = (char *)"rgb8";
		img.step = CAMERA_STEP;
		rc = foxglove__raw_image__loan_data(pub, &img, CAMERA_FRAME_BYTES, &loan);
		if (rc == SHMBUS_OK) {
			render(loan.field, frame);
			rc = foxglove__raw_image__publish_loan(pub, &loan, NULL);
		}
		if (rc == SHMBUS_OK)
			rc = publish_calibration(cal_pub, exposure);
		if (rc == SHMBUS_OK) {
			published++;
		} else {
			failed++;
			fprintf(stderr, "pipeline_camera: frame %u: %s\n", frame, shmbus_strerror(rc));
		}
		next += period;
		sleep_until(next);
	}
	printf("pipeline_camera: published %llu frames (%llu failed)\n",
	       (unsigned long long)published, (unsigned long long)failed);
	shmbus_pub_close(cal_pub);
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return failed ? 1 : 0;
}
