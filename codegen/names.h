/*
 * names.h - the C names protoc-c gives to proto elements. The typed layer
 * refers to protoc-c's types, descriptors and struct members, so it must
 * spell them exactly as protoc-c does (protobuf-c 1.x naming rules).
 * Every function returns a malloc'd string, or NULL when out of memory.
 */
#ifndef SHMBUS_CODEGEN_NAMES_H
#define SHMBUS_CODEGEN_NAMES_H

/* "pkg.sub.FooBar" -> "Pkg__Sub__FooBar" (struct type names). */
char *name_c_type(const char *full_name);
/* "pkg.sub.FooBar" -> "pkg__sub__foo_bar" (function and descriptor prefix). */
char *name_c_lower(const char *full_name);
/* "pkg.sub.FooBar" -> "PKG__SUB__FOO_BAR" (macro prefix). */
char *name_c_upper(const char *full_name);
/* A field's struct member: lower case, with '_' added to C/C++ keywords. */
char *name_c_field(const char *field_name);
/* "dir/foo.proto" -> "dir/foo" (protoc-c strips .proto and .protodevel). */
char *name_strip_proto(const char *file_name);
/* "dir/foo.proto" -> "dir_2ffoo_2eproto": an identifier unique per file. */
char *name_file_ident(const char *file_name);

#endif
