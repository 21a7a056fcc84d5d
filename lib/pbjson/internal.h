/*
 * internal.h - pbjson's indexed view of a FileDescriptorSet, shared by the
 * schema loader, the decoder, the encoder and the text helpers.
 */
#ifndef SHMBUS_PBJSON_INTERNAL_H
#define SHMBUS_PBJSON_INTERNAL_H

#include <stdarg.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "pbjson.h"

/* FieldDescriptorProto.Type values (descriptor.proto). */
enum pj_type {
	PJ_DOUBLE = 1, PJ_FLOAT = 2, PJ_INT64 = 3, PJ_UINT64 = 4, PJ_INT32 = 5,
	PJ_FIXED64 = 6, PJ_FIXED32 = 7, PJ_BOOL = 8, PJ_STRING = 9, PJ_GROUP = 10,
	PJ_MESSAGE = 11, PJ_BYTES = 12, PJ_UINT32 = 13, PJ_ENUM = 14,
	PJ_SFIXED32 = 15, PJ_SFIXED64 = 16, PJ_SINT32 = 17, PJ_SINT64 = 18,
};

enum pj_wire { PJ_WT_VARINT = 0, PJ_WT_I64 = 1, PJ_WT_LEN = 2, PJ_WT_I32 = 5 };

/* Well-known types printed as strings. */
enum pj_wkt { PJ_WKT_NONE, PJ_WKT_TIMESTAMP, PJ_WKT_DURATION,
	      PJ_WKT_WRAPPER /* google.protobuf.Int32Value etc.: the bare value */ };

struct pj_msg;
struct pj_enum;

struct pj_field {
	const char *name;   /* as in the .proto */
	char *json_name;    /* owned */
	uint32_t number;
	enum pj_type type;
	bool repeated;
	bool packed;        /* written packed by the encoder */
	bool presence;      /* has explicit presence: never left out as default */
	bool is_map;        /* repeated map entry message */
	int oneof;          /* index of a real (not synthetic) oneof, or -1 */
	const char *default_value; /* proto2 [default = ...], or NULL */
	const struct pj_msg *msg;  /* PJ_MESSAGE */
	const struct pj_enum *en;  /* PJ_ENUM */
};

struct pj_msg {
	char *full_name; /* owned, no leading dot */
	const Google__Protobuf__DescriptorProto *d;
	bool proto3;
	bool map_entry;
	enum pj_wkt wkt;
	struct pj_field *fields;     /* declaration order */
	size_t nfields;
	struct pj_field **by_number; /* sorted by number */
};

struct pj_enum {
	char *full_name;
	const Google__Protobuf__EnumDescriptorProto *d;
};

struct pbjson_schema {
	Google__Protobuf__FileDescriptorSet *fds;
	struct pj_msg *msgs; /* sorted by full_name */
	size_t nmsgs;
	struct pj_enum *enums; /* sorted by full_name */
	size_t nenums;
};

const struct pj_msg *pj_find_msg(const pbjson_schema *s, const char *name);
const struct pj_field *pj_field_by_number(const struct pj_msg *m, uint32_t number);
const struct pj_field *pj_field_by_name(const struct pj_msg *m, const char *name);
const char *pj_enum_name(const struct pj_enum *e, int32_t number);
bool pj_enum_number(const struct pj_enum *e, const char *name, int32_t *number);
enum pj_wire pj_wire_type(enum pj_type t);
const char *pj_type_text(enum pj_type t);

void pj_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* text.c */
char *pj_base64(const uint8_t *p, size_t n);
/* Decoded bytes into *out (malloc'd); false if s is not base64. */
bool pj_unbase64(const char *s, size_t len, uint8_t **out, size_t *n);
bool pj_format_timestamp(int64_t sec, int32_t nanos, char *buf, size_t len);
bool pj_parse_timestamp(const char *s, int64_t *sec, int32_t *nanos);
bool pj_format_duration(int64_t sec, int32_t nanos, char *buf, size_t len);
bool pj_parse_duration(const char *s, int64_t *sec, int32_t *nanos);
/* The double nearest to the shortest decimal that reads back as f. */
double pj_float_to_double(float f);

#endif
