/*
 * pipeline_camera - a simulated 1280x720 RGB camera at 30 Hz. Each frame is
 * rendered straight into the topic's shared memory through the typed
 * zero-copy loan (shmbus__msgs__image__loan_data): the 2.7 MB of pixels
 * are written once, where every subscriber reads them.
 *
 *   pipeline_camera [--bus NAME] [--duration SECONDS]
 */
#include "common.h"

#include <stdio.h>

#include "shmbus/msgs/image.shmbus.h"

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

int main(int argc, char **argv)
{
	struct pipeline_args args;
	struct shmbus_topic_options to;
	shmbus_bus *bus;
	shmbus_pub *pub;
	uint64_t published = 0, failed = 0;
	int64_t start, next, period = 1000000000 / CAMERA_HZ;
	int rc;

	pipeline_init(argc, argv, "pipeline_camera", &args);
	bus = pipeline_connect("pipeline_camera", &args);
	camera_topic_options(&to);
	rc = shmbus__msgs__image__pub_open(bus, CAMERA_TOPIC, &to, NULL, &pub);
	if (rc != SHMBUS_OK) {
		fprintf(stderr, "pipeline_camera: %s: %s: %s\n", CAMERA_TOPIC, shmbus_strerror(rc),
			shmbus_errmsg());
		shmbus_disconnect(bus);
		return 1;
	}
	start = next = monotonic_ns();
	for (uint32_t frame = 0; !pipeline_done(&args, start); frame++) {
		Shmbus__Msgs__Header hdr = SHMBUS__MSGS__HEADER__INIT;
		Shmbus__Msgs__Image img = SHMBUS__MSGS__IMAGE__INIT;
		struct shmbus_typed_loan loan;

		hdr.stamp_ns = realtime_ns(); /* "exposure" */
		hdr.frame_id = (char *)"camera_optical";
		img.header = &hdr;
		img.width = CAMERA_WIDTH;
		img.height = CAMERA_HEIGHT;
		img.encoding = (char *)"rgb8";
		img.step = CAMERA_STEP;
		rc = shmbus__msgs__image__loan_data(pub, &img, CAMERA_FRAME_BYTES, &loan);
		if (rc == SHMBUS_OK) {
			render(loan.field, frame);
			rc = shmbus__msgs__image__publish_loan(pub, &loan, NULL);
		}
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
	shmbus_pub_close(pub);
	shmbus_disconnect(bus);
	return failed ? 1 : 0;
}
