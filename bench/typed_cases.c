/*
 * typed_cases.c - what the generated typed layer (protoc-gen-shmbus,
 * libshmbus-typed) costs over the untyped bus, with the same drivers:
 *
 *   typed_imu_take   an shmbus.msgs.Imu published (packed straight into
 *        the loan) and taken (unpacked with malloc, freed) through the
 *        generated functions, ping-pong; peer typed_imu_raw: the very
 *        bytes it packs into, with shmbus_pub_send and shmbus_sub_take.
 *   typed_imu_cpu    the same work in one process on one core (peer
 *        typed_imu_raw_cpu): what it costs without cache lines crossing
 *        cores.
 *   typed_imu_size_cpu, typed_imu_bound_cpu, typed_imu_pack_cpu,
 *   typed_imu_pack_plan_cpu, typed_imu_unpack_cpu,
 *   typed_imu_unpack_pieces_cpu   where
 *        typed_imu_cpu's time goes, in one process on one core, no bus:
 *        protobuf-c sizing the Imu exactly, the runtime's size bound (what
 *        a publish computes instead; peer: the exact sizing), protobuf-c
 *        packing it, the runtime packing it by its plan (what a publish
 *        does; peer: protobuf-c's pack), the runtime unpacking it into one block and freeing it
 *        (shmbus_typed_unpack / shmbus_typed_free, as a take does), and
 *        protobuf-c unpacking it with malloc per piece and freeing it
 *        (the unpack's peer).
 *   typed_image_view   an image whose pixels are written in place
 *        (loan_data) and read in place (view_data, which unpacks the other
 *        fields), at every latency size; peer: bus_poll_view, the untyped
 *        zero-copy view of as many bytes; floor: itself at 64 B (flatness).
 *
 * Ping-pong rows poll.
 */
#include "bench.h"
#include "bus_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmbus/shmbus.h>

#include "shmbus/msgs/image.shmbus.h"
#include "shmbus/msgs/imu.shmbus.h"

size_t typed_size_bound(const ProtobufCMessage *msg); /* codegen/runtime/size_bound.c */
size_t typed_pack(const ProtobufCMessage *msg, uint8_t *out); /* codegen/runtime/pack.c */

#define TYPED_TIMEOUT_NS (10 * (int64_t)1000000000)
/* header.stamp_ns of the bench's Imu: a time of day, plus the command. */
#define STAMP_BASE 1764000000000000000LL

enum typed_mode {
	MODE_IMU,     /* shmbus__msgs__imu__publish / __take */
	MODE_IMU_RAW, /* the same bytes: shmbus_pub_send / shmbus_sub_take */
	MODE_IMAGE,   /* shmbus__msgs__image__loan_data / __view_data */
};

/* An Imu as a driver fills it: every field, 3x3 covariances. */
struct imu_msg {
	Shmbus__Msgs__Imu imu;
	Shmbus__Msgs__Header header;
	Shmbus__Msgs__Quaternion q;
	Shmbus__Msgs__Vector3 w, a;
	double cov[9];
};

struct typed_case {
	const char *name;
	enum typed_mode mode;
	size_t size;       /* bytes on the wire; MODE_IMAGE: the pixels' */
	uint32_t slots;    /* ring size, as the bus cases it compares with */
	char topic[2][96]; /* ping-pong: [0] initiator -> echoer, [1] back */
	/* Per process (each has its own copy after fork). */
	shmbus_bus *bus;
	shmbus_pub *pub;
	shmbus_sub *sub;
	struct imu_msg imu;
	uint8_t wire[2][BENCH_TYPED_IMU]; /* MODE_IMU_RAW: packed with ECHO, STOP */
	uint8_t in[BENCH_TYPED_IMU];      /* MODE_IMU_RAW: where takes go */
	size_t cmd_at;                    /* MODE_IMU_RAW: where ECHO and STOP differ */
	Shmbus__Msgs__Image img;
	Shmbus__Msgs__Header img_header;
};

static void imu_fill(struct imu_msg *m, uint64_t cmd)
{
	shmbus__msgs__imu__init(&m->imu);
	shmbus__msgs__header__init(&m->header);
	shmbus__msgs__quaternion__init(&m->q);
	shmbus__msgs__vector3__init(&m->w);
	shmbus__msgs__vector3__init(&m->a);
	m->header.stamp_ns = STAMP_BASE + (int64_t)cmd;
	m->header.frame_id = (char *)"imu_link";
	m->q.x = 0.01;
	m->q.y = -0.02;
	m->q.z = 0.7;
	m->q.w = 0.71;
	m->w.x = 0.001;
	m->w.y = -0.002;
	m->w.z = 0.03;
	m->a.x = 0.12;
	m->a.y = -0.05;
	m->a.z = 9.81;
	for (int i = 0; i < 9; i++)
		m->cov[i] = i % 4 == 0 ? 1e-4 : 1e-7 * (i + 1);
	m->imu.header = &m->header;
	m->imu.orientation = &m->q;
	m->imu.angular_velocity = &m->w;
	m->imu.linear_acceleration = &m->a;
	m->imu.n_orientation_covariance = 9;
	m->imu.orientation_covariance = m->cov;
	m->imu.n_angular_velocity_covariance = 9;
	m->imu.angular_velocity_covariance = m->cov;
	m->imu.n_linear_acceleration_covariance = 9;
	m->imu.linear_acceleration_covariance = m->cov;
}

/* MODE_IMU_RAW: the Imu packed with each command, and the one byte they
 * differ in (the receiver reads the command there, as bus_poll_take reads
 * a word). */
static int raw_prepare(struct typed_case *c)
{
	int differ = 0;

	for (int k = 0; k < 2; k++) {
		imu_fill(&c->imu, (uint64_t)(k == 0 ? BENCH_CMD_ECHO : BENCH_CMD_STOP));
		if (shmbus__msgs__imu__get_packed_size(&c->imu.imu) != BENCH_TYPED_IMU) {
			bench_fail(c->name, "the Imu packs into %zu bytes, not BENCH_TYPED_IMU",
				   shmbus__msgs__imu__get_packed_size(&c->imu.imu));
			return -1;
		}
		shmbus__msgs__imu__pack(&c->imu.imu, c->wire[k]);
	}
	for (size_t i = 0; i < BENCH_TYPED_IMU; i++) {
		if (c->wire[0][i] != c->wire[1][i]) {
			c->cmd_at = i;
			differ++;
		}
	}
	return differ == 1 ? 0 : -1;
}

/* The only place the cases open topics: typed modes through the generated
 * functions, the raw peer through the untyped API on an Imu topic of the
 * same layout. */
static int open_handles(struct typed_case *c, const char *pub_topic, const char *sub_topic)
{
	struct shmbus_topic_options t;
	struct shmbus_sub_options so;
	int rc = 0;

	shmbus_topic_options_init(&t);
	t.slot_count = c->slots;
	if (c->mode == MODE_IMAGE) {
		shmbus__msgs__image__topic_type(&t);
		t.max_message_size = (uint32_t)c->size + 256; /* the other fields */
	} else {
		t.max_message_size = 0; /* the type's (SHMBUS_TYPED_DEFAULT_MAX_SIZE) */
		shmbus__msgs__imu__topic_type(&t);
	}
	shmbus_sub_options_init(&so);
	so.create_if_missing = true;
	if (pub_topic) {
		rc = c->mode == MODE_IMU_RAW
			     ? shmbus_pub_open(c->bus, pub_topic, &t, NULL, &c->pub)
		     : c->mode == MODE_IMU
			     ? shmbus__msgs__imu__pub_open(c->bus, pub_topic, &t, NULL, &c->pub)
			     : shmbus__msgs__image__pub_open(c->bus, pub_topic, &t, NULL, &c->pub);
		if (rc != 0) {
			bench_bus_report(c->name, c->bus, "pub_open", rc);
			return -1;
		}
	}
	if (sub_topic) {
		rc = c->mode == MODE_IMU_RAW
			     ? shmbus_sub_open(c->bus, sub_topic, &t, &so, &c->sub)
		     : c->mode == MODE_IMU
			     ? shmbus__msgs__imu__sub_open(c->bus, sub_topic, &t, &so, &c->sub)
			     : shmbus__msgs__image__sub_open(c->bus, sub_topic, &t, &so, &c->sub);
		if (rc != 0) {
			bench_bus_report(c->name, c->bus, "sub_open", rc);
			return -1;
		}
	}
	return 0;
}

static int setup(struct typed_case *c, const char *pub_topic, const char *sub_topic)
{
	int rc;

	c->pub = NULL;
	c->sub = NULL;
	if (c->mode == MODE_IMU_RAW && raw_prepare(c) != 0)
		return -1;
	imu_fill(&c->imu, BENCH_CMD_ECHO);
	shmbus__msgs__header__init(&c->img_header);
	c->img_header.stamp_ns = STAMP_BASE;
	c->img_header.frame_id = (char *)"camera_optical";
	shmbus__msgs__image__init(&c->img);
	c->img.header = &c->img_header;
	c->img.width = (uint32_t)c->size;
	c->img.height = 1;
	c->img.step = (uint32_t)c->size;
	c->img.encoding = (char *)"mono8";
	if ((rc = bench_bus_get(&c->bus)) != 0) {
		bench_bus_report(c->name, NULL, "shmbus_connect", rc);
		return -1;
	}
	if (open_handles(c, pub_topic, sub_topic) != 0) {
		shmbus_pub_close(c->pub);
		bench_bus_put(c->bus);
		return -1;
	}
	return 0;
}

static void teardown(struct typed_case *c)
{
	shmbus_sub_close(c->sub);
	shmbus_pub_close(c->pub);
	bench_bus_put(c->bus);
}

static int send_cmd(struct typed_case *c, uint64_t cmd)
{
	struct shmbus_typed_loan loan;
	int rc;

	switch (c->mode) {
	case MODE_IMU:
		c->imu.header.stamp_ns = STAMP_BASE + (int64_t)cmd;
		rc = shmbus__msgs__imu__publish(c->pub, &c->imu.imu, NULL);
		break;
	case MODE_IMU_RAW:
		rc = shmbus_pub_send(c->pub, c->wire[cmd == BENCH_CMD_STOP], BENCH_TYPED_IMU, NULL);
		break;
	default:
		/* The pixels are produced in place; only their first word (the
		 * command) is written here, as bus_poll_view does. */
		rc = shmbus__msgs__image__loan_data(c->pub, &c->img, c->size, &loan);
		if (rc == 0) {
			memcpy(loan.field, &cmd, sizeof(cmd));
			rc = shmbus__msgs__image__publish_loan(c->pub, &loan, NULL);
		}
		break;
	}
	if (rc != 0)
		bench_bus_report(c->name, c->bus, "publish", rc);
	return rc ? -1 : 0;
}

/* Take one message if there is one: its command, 0 for nothing, or -1
 * (with one message in flight nothing laps it: SHMBUS_ELAPPED is an
 * error here too). */
static int64_t recv_once(struct typed_case *c)
{
	Shmbus__Msgs__Imu *imu = NULL;
	Shmbus__Msgs__Image *img = NULL;
	struct shmbus_typed_view view;
	int64_t cmd = -1;
	int rc;

	switch (c->mode) {
	case MODE_IMU:
		rc = shmbus__msgs__imu__take(c->sub, NULL, &imu, NULL);
		if (rc == 0) {
			cmd = imu->header ? imu->header->stamp_ns - STAMP_BASE : -1;
			shmbus__msgs__imu__free(imu, NULL);
		}
		break;
	case MODE_IMU_RAW:
		rc = shmbus_sub_take(c->sub, c->in, sizeof(c->in), NULL);
		if (rc == 0)
			cmd = c->in[c->cmd_at] == c->wire[1][c->cmd_at] ? BENCH_CMD_STOP
									: BENCH_CMD_ECHO;
		break;
	default:
		rc = shmbus__msgs__image__view_data(c->sub, NULL, &img, &view);
		if (rc == 0) {
			uint64_t word = 0;

			if (view.field_size >= sizeof(word))
				memcpy(&word, view.field, sizeof(word));
			rc = shmbus__msgs__image__view_release(c->sub, img, NULL, &view);
			cmd = (int64_t)word;
		}
		break;
	}
	if (rc == SHMBUS_EAGAIN)
		return 0;
	if (rc != 0) {
		bench_bus_report(c->name, c->bus, "take", rc);
		return -1;
	}
	return cmd;
}

/* ------------------------------------------------------------ ping-pong */

static int pp_setup(void *ctx, int role)
{
	struct typed_case *c = ctx;

	return setup(c, c->topic[role], c->topic[!role]);
}

static void pp_teardown(void *ctx, int role)
{
	(void)role;
	teardown(ctx);
}

/* Polls until a message comes: its command, or -1. */
static int64_t pp_recv(struct typed_case *c)
{
	int64_t deadline = 0;

	for (unsigned spins = 1;; spins++) {
		int64_t cmd = recv_once(c);

		if (cmd != 0)
			return cmd;
		if (spins % 4096 != 0)
			continue;
		if (!deadline) {
			deadline = now_mono_ns() + TYPED_TIMEOUT_NS;
		} else if (now_mono_ns() > deadline) {
			bench_fail(c->name, "no message for %lld s",
				   (long long)(TYPED_TIMEOUT_NS / 1000000000));
			return -1;
		}
	}
}

static int pp_ping(void *ctx, enum bench_cmd cmd)
{
	struct typed_case *c = ctx;

	if (send_cmd(c, (uint64_t)cmd) != 0)
		return -1;
	if (cmd == BENCH_CMD_STOP)
		return 0;
	return pp_recv(c) == BENCH_CMD_ECHO ? 0 : -1;
}

static int pp_echo(void *ctx)
{
	struct typed_case *c = ctx;
	int64_t cmd = pp_recv(c);

	if (cmd == BENCH_CMD_STOP)
		return BENCH_CMD_STOP;
	if (cmd != BENCH_CMD_ECHO || send_cmd(c, BENCH_CMD_ECHO) != 0)
		return -1;
	return BENCH_CMD_ECHO;
}

static const struct bench_pingpong_ops pp_ops = {
	.setup = pp_setup,
	.ping = pp_ping,
	.echo = pp_echo,
	.teardown = pp_teardown,
};

static int run_latency(const char *name, enum typed_mode mode, size_t size, const char *peer,
		       const char *floor, uint64_t floor_size)
{
	struct typed_case *c = calloc(1, sizeof(*c));
	int rc = -1;

	if (!c)
		return -1;
	c->name = name;
	c->mode = mode;
	c->size = size;
	c->slots = bench_bus_latency_slots(size);
	snprintf(c->topic[0], sizeof(c->topic[0]), "bench/%s/%zu/ping", name, size);
	snprintf(c->topic[1], sizeof(c->topic[1]), "bench/%s/%zu/pong", name, size);
	if (bench_pingpong(name, size, &pp_ops, c, floor, floor_size) == 0) {
		struct bench_row *r = bench_rows_find(name, size);

		if (peer)
			bench_row_set_peer(r, peer, size);
		snprintf(r->note, sizeof(r->note), "%s",
			 mode == MODE_IMU     ? "generated publish + take (unpack, free), polling"
			 : mode == MODE_IMU_RAW ? "the Imu's bytes: shmbus_pub_send + shmbus_sub_take"
						: "loan_data + view_data (other fields unpacked)");
		rc = 0;
	}
	free(c);
	return rc;
}

/* ----------------------------------------------------------------- cpu */

/* Publish and take in one process on one core, in batches: what the work
 * itself costs, without a cache line crossing cores (the ping-pong rows
 * have both). */
#define CPU_BATCH 64

static int cpu_batch(void *ctx)
{
	struct typed_case *c = ctx;

	for (int k = 0; k < CPU_BATCH; k++)
		if (send_cmd(c, BENCH_CMD_ECHO) != 0 || recv_once(c) != BENCH_CMD_ECHO)
			return -1;
	return 0;
}

static int run_cpu(const char *name, enum typed_mode mode, const char *peer)
{
	struct typed_case *c = calloc(1, sizeof(*c));
	struct bench_row *r = NULL;

	if (!c)
		return -1;
	c->name = name;
	c->mode = mode;
	c->size = BENCH_TYPED_IMU;
	c->slots = bench_bus_latency_slots(BENCH_TYPED_IMU);
	snprintf(c->topic[0], sizeof(c->topic[0]), "bench/%s", name);
	if (setup(c, c->topic[0], c->topic[0]) == 0) {
		r = bench_batched(name, BENCH_TYPED_IMU, cpu_batch, c, CPU_BATCH);
		teardown(c);
	}
	if (r) {
		if (peer)
			bench_row_set_peer(r, peer, BENCH_TYPED_IMU);
		snprintf(r->note, sizeof(r->note),
			 "ns per publish + take, one process, one core, batches of %d", CPU_BATCH);
	}
	free(c);
	return r ? 0 : -1;
}

/* ------------------------------------------------------------ breakdown */

enum part {
	PART_SIZE,          /* protobuf_c_message_get_packed_size */
	PART_BOUND,         /* typed_size_bound, what publish computes instead */
	PART_PACK,          /* protobuf_c_message_pack into a buffer */
	PART_PACK_PLAN,     /* typed_pack, what publish does instead */
	PART_UNPACK,        /* shmbus_typed_unpack + shmbus_typed_free */
	PART_UNPACK_PIECES, /* protobuf_c_message_unpack + free_unpacked, malloc */
};

struct part_case {
	enum part part;
	struct imu_msg imu;
	uint8_t wire[BENCH_TYPED_IMU];
	size_t sink; /* what the sizes add up to, so that no call is dropped */
};

static int part_batch(void *ctx)
{
	struct part_case *c = ctx;
	ProtobufCMessage *m;

	for (int k = 0; k < CPU_BATCH; k++) {
		switch (c->part) {
		case PART_SIZE:
			c->sink += protobuf_c_message_get_packed_size(&c->imu.imu.base);
			break;
		case PART_BOUND:
			c->sink += typed_size_bound(&c->imu.imu.base);
			break;
		case PART_PACK:
			c->sink += protobuf_c_message_pack(&c->imu.imu.base, c->wire);
			break;
		case PART_PACK_PLAN:
			c->sink += typed_pack(&c->imu.imu.base, c->wire);
			break;
		case PART_UNPACK:
			if (shmbus_typed_unpack(&shmbus__msgs__imu__shmbus_type, NULL, c->wire,
						sizeof(c->wire), &m) != SHMBUS_OK)
				return -1;
			shmbus_typed_free(&shmbus__msgs__imu__shmbus_type, m, NULL);
			break;
		case PART_UNPACK_PIECES:
			m = protobuf_c_message_unpack(&shmbus__msgs__imu__descriptor, NULL,
						      sizeof(c->wire), c->wire);
			if (!m)
				return -1;
			protobuf_c_message_free_unpacked(m, NULL);
			break;
		}
	}
	return 0;
}

static int run_part(const char *name, enum part part, const char *peer, const char *what)
{
	struct part_case *c = calloc(1, sizeof(*c));
	struct bench_row *r = NULL;

	if (!c)
		return -1;
	c->part = part;
	imu_fill(&c->imu, BENCH_CMD_ECHO);
	if (shmbus__msgs__imu__get_packed_size(&c->imu.imu) != BENCH_TYPED_IMU) {
		bench_fail(name, "the Imu packs into %zu bytes, not BENCH_TYPED_IMU",
			   shmbus__msgs__imu__get_packed_size(&c->imu.imu));
		free(c);
		return -1;
	}
	shmbus__msgs__imu__pack(&c->imu.imu, c->wire);
	r = bench_batched(name, BENCH_TYPED_IMU, part_batch, c, CPU_BATCH);
	if (r) {
		if (peer)
			bench_row_set_peer(r, peer, BENCH_TYPED_IMU);
		snprintf(r->note, sizeof(r->note), "ns per %s, one core, batches of %d", what,
			 CPU_BATCH);
	}
	free(c);
	return r ? 0 : -1;
}

/* ---------------------------------------------------------------- run */

int bench_typed_run(int stage)
{
	int failed = 0;

	if (stage >= 0 && (size_t)stage < bench_nsizes) {
		size_t s = bench_sizes[stage];

		if (stage == 0 && bench_selected("typed_imu_raw"))
			failed += run_latency("typed_imu_raw", MODE_IMU_RAW, BENCH_TYPED_IMU, NULL,
					      NULL, 0) != 0;
		if (stage == 0 && bench_selected("typed_imu_take"))
			failed += run_latency("typed_imu_take", MODE_IMU, BENCH_TYPED_IMU,
					      "typed_imu_raw", NULL, 0) != 0;
		if (bench_selected("typed_image_view"))
			failed += run_latency("typed_image_view", MODE_IMAGE, s, "bus_poll_view",
					      "typed_image_view", 64) != 0;
		if (stage == 0 && bench_selected("typed_imu_raw_cpu"))
			failed += run_cpu("typed_imu_raw_cpu", MODE_IMU_RAW, NULL) != 0;
		if (stage == 0 && bench_selected("typed_imu_cpu"))
			failed += run_cpu("typed_imu_cpu", MODE_IMU, "typed_imu_raw_cpu") != 0;
		if (stage == 0 && bench_selected("typed_imu_size_cpu"))
			failed += run_part("typed_imu_size_cpu", PART_SIZE, NULL,
					   "protobuf-c sizing") != 0;
		if (stage == 0 && bench_selected("typed_imu_bound_cpu"))
			failed += run_part("typed_imu_bound_cpu", PART_BOUND, "typed_imu_size_cpu",
					   "runtime size bound") != 0;
		if (stage == 0 && bench_selected("typed_imu_pack_cpu"))
			failed += run_part("typed_imu_pack_cpu", PART_PACK, NULL,
					   "protobuf-c pack into a buffer") != 0;
		if (stage == 0 && bench_selected("typed_imu_pack_plan_cpu"))
			failed += run_part("typed_imu_pack_plan_cpu", PART_PACK_PLAN,
					   "typed_imu_pack_cpu", "runtime pack by plan, as publish") != 0;
		if (stage == 0 && bench_selected("typed_imu_unpack_pieces_cpu"))
			failed += run_part("typed_imu_unpack_pieces_cpu", PART_UNPACK_PIECES, NULL,
					   "protobuf-c unpack + free, malloc per piece") != 0;
		if (stage == 0 && bench_selected("typed_imu_unpack_cpu"))
			failed += run_part("typed_imu_unpack_cpu", PART_UNPACK,
					   "typed_imu_unpack_pieces_cpu",
					   "unpack into one block + free, as take") != 0;
	}
	return failed;
}
