/*
 * protoc-gen-shmbus - the protoc plugin that writes typed shmbus publishers
 * and subscribers for .proto files:
 *
 *   protoc --c_out=OUT --shmbus_out=OUT foo.proto
 *
 * writes OUT/foo.shmbus.h and OUT/foo.shmbus.c beside protoc-c's
 * OUT/foo.pb-c.{h,c}. This file owns the plugin protocol: read a
 * CodeGeneratorRequest on stdin, answer a CodeGeneratorResponse on stdout.
 * A file the plugin cannot handle is reported in the response's `error`,
 * which protoc prints and turns into a failed exit.
 */
#include "generate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static int read_all(int fd, uint8_t **out, size_t *size)
{
	size_t cap = 1 << 16, len = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			uint8_t *p = realloc(buf, cap * 2);

			if (!p) {
				free(buf);
				return -ENOMEM;
			}
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;

			free(buf);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	*size = len;
	return 0;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void free_response(Google__Protobuf__Compiler__CodeGeneratorResponse *resp)
{
	for (size_t i = 0; i < resp->n_file; i++) {
		free(resp->file[i]->name);
		free(resp->file[i]->content);
		free(resp->file[i]);
	}
	free(resp->file);
	free(resp->error);
}

/* Fills resp from req; returns -1 only when out of memory. */
static int run(const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
	       Google__Protobuf__Compiler__CodeGeneratorResponse *resp)
{
	resp->has_supported_features = 1;
	resp->supported_features =
		GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
	if (req->parameter && *req->parameter) {
		if (asprintf(&resp->error,
			     "protoc-gen-shmbus takes no options, got \"%s\"", req->parameter) < 0) {
			resp->error = NULL;
			return -1;
		}
		return 0;
	}
	resp->file = calloc(2 * req->n_file_to_generate + 1, sizeof(*resp->file));
	if (!resp->file)
		return -1;
	for (size_t i = 0; i < req->n_file_to_generate; i++) {
		struct generated_file out[2];
		char *error = NULL;

		if (generate_file(req, req->file_to_generate[i], out, &error) != 0) {
			if (!error)
				return -1;
			resp->error = error;
			return 0;
		}
		for (int k = 0; k < 2; k++) {
			Google__Protobuf__Compiler__CodeGeneratorResponse__File *f = malloc(sizeof(*f));

			if (!f) {
				free(out[k].name);
				free(out[k].content);
				if (k == 0) {
					free(out[1].name);
					free(out[1].content);
				}
				return -1;
			}
			google__protobuf__compiler__code_generator_response__file__init(f);
			f->name = out[k].name;
			f->content = out[k].content;
			resp->file[resp->n_file++] = f;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	Google__Protobuf__Compiler__CodeGeneratorRequest *req;
	Google__Protobuf__Compiler__CodeGeneratorResponse resp =
		GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
	uint8_t *in = NULL, *packed;
	size_t in_size = 0, out_size;
	int rc;

	if (argc > 1) {
		if (strcmp(argv[1], "--version") == 0) {
			printf("protoc-gen-shmbus %s\n", STR(SHMBUS_GEN_VERSION));
			return 0;
		}
		fprintf(stderr, "protoc-gen-shmbus is a protoc plugin: run it as\n"
				"  protoc --plugin=protoc-gen-shmbus=PATH --c_out=OUT "
				"--shmbus_out=OUT FILE.proto\n");
		return 2;
	}
	rc = read_all(STDIN_FILENO, &in, &in_size);
	if (rc != 0) {
		fprintf(stderr, "protoc-gen-shmbus: reading the request: %s\n", strerror(-rc));
		return 1;
	}
	req = google__protobuf__compiler__code_generator_request__unpack(NULL, in_size, in);
	free(in);
	if (!req) {
		fprintf(stderr, "protoc-gen-shmbus: stdin is not a CodeGeneratorRequest "
				"(run the plugin through protoc)\n");
		return 1;
	}
	rc = run(req, &resp);
	google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);
	if (rc != 0) {
		fprintf(stderr, "protoc-gen-shmbus: out of memory\n");
		free_response(&resp);
		return 1;
	}
	out_size = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
	packed = malloc(out_size ? out_size : 1);
	if (!packed) {
		fprintf(stderr, "protoc-gen-shmbus: out of memory\n");
		free_response(&resp);
		return 1;
	}
	google__protobuf__compiler__code_generator_response__pack(&resp, packed);
	free_response(&resp);
	rc = write_all(STDOUT_FILENO, packed, out_size);
	free(packed);
	if (rc != 0) {
		fprintf(stderr, "protoc-gen-shmbus: writing the response: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
