/*
 * templates.h - the text of the generated code, one array of lines per
 * piece (see templates.c); generate.c fills in the $name$ variables.
 */
#ifndef SHMBUS_CODEGEN_TEMPLATES_H
#define SHMBUS_CODEGEN_TEMPLATES_H

extern const char *const tpl_header_top[];
extern const char *const tpl_header_message[];
extern const char *const tpl_header_bounded[];
extern const char *const tpl_header_unbounded[];
extern const char *const tpl_header_functions[];
extern const char *const tpl_header_zc_field[];
extern const char *const tpl_header_zc_message[];
extern const char *const tpl_header_bottom[];
extern const char *const tpl_source_top[];
extern const char *const tpl_source_message[];
extern const char *const tpl_source_zc_field[];
extern const char *const tpl_source_zc_message[];

#endif
