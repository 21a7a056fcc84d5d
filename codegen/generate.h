/*
 * generate.h - from one .proto file (as protoc describes it), the text of
 * its typed layer: NAME.shmbus.h and NAME.shmbus.c.
 */
#ifndef SHMBUS_CODEGEN_GENERATE_H
#define SHMBUS_CODEGEN_GENERATE_H

#include "google/protobuf/compiler/plugin.pb-c.h"

struct generated_file {
	char *name;    /* path relative to the output directory */
	char *content;
};

/* Generate the files for `file_name`, one of req->file_to_generate.
 * Returns 0 and fills out[0..1] (the caller frees them), or -1 with
 * *error set to a malloc'd explanation (NULL when out of memory). */
int generate_file(const Google__Protobuf__Compiler__CodeGeneratorRequest *req,
		  const char *file_name, struct generated_file out[2], char **error);

#endif
