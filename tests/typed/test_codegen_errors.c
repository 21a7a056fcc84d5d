/*
 * test_codegen_errors - files the plugin cannot handle get a clear error
 * (CodeGeneratorResponse.error, which protoc prints and exits non-zero on)
 * naming the file and the cause, and no output; misuse of the plugin
 * itself is reported too.
 *
 * usage: test_codegen_errors PROTOC PLUGIN PROTO_DIR PROTO_INCLUDE_DIR
 */
#include "harness.h"
#include "typed_util.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *protoc, *plugin, *proto_dir, *proto_include;

/* Runs protoc with the plugin on `file` (with `opt` as the plugin's
 * parameter when not NULL); returns the exit status, *err the stderr. */
static int run_plugin(const char *dir, const char *file, const char *opt, char **err)
{
	char plugin_arg[4096], path1[4096], path2[4096], out[4096];

	snprintf(plugin_arg, sizeof(plugin_arg), "--plugin=protoc-gen-shmbus=%s", plugin);
	snprintf(path1, sizeof(path1), "--proto_path=%s", proto_dir);
	snprintf(path2, sizeof(path2), "--proto_path=%s", proto_include);
	snprintf(out, sizeof(out), "--shmbus_out=%s%s%s", opt ? opt : "", opt ? ":" : "", dir);
	char *argv[] = { (char *)protoc, plugin_arg, path1, path2, out, (char *)file, NULL };

	return util_run(argv, NULL, dir, err);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

static void expect_error(const char *file, const char *opt, const char *const *needles)
{
	char *dir = util_mkdtemp();
	char *err = NULL;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	rc = run_plugin(dir, file, opt, &err);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	for (size_t i = 0; needles[i]; i++) {
		if (!strstr(err, needles[i]))
			printf("\nstderr lacks \"%s\": %s\n", needles[i], err);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, needles[i]));
	}
	CU_ASSERT_EQUAL(count_files(dir), 0); /* nothing half-written */
	free(err);
	util_rmtree(dir);
	free(dir);
}

static void test_extensions_refused(void)
{
	const char *const needles[] = { "bad/extension.proto", "extensions",
					"shmbus.test.bad.Extendable", NULL };

	expect_error("bad/extension.proto", NULL, needles);
}

static void test_groups_refused(void)
{
	const char *const needles[] = { "bad/group.proto", "shmbus.test.bad.WithGroup.result",
					"group", NULL };

	expect_error("bad/group.proto", NULL, needles);
}

static void test_protobuf_c_options_refused(void)
{
	const char *const needles[] = { "bad/pbc_option.proto", "pb_c_file", NULL };

	expect_error("bad/pbc_option.proto", NULL, needles);
}

static void test_unknown_parameter_refused(void)
{
	const char *const needles[] = { "takes no options", "\"fast=1\"", NULL };

	expect_error("golden.proto", "fast=1", needles);
}

/* The control: a good file through the same path succeeds, so the tests
 * above fail for the reason they name. */
static void test_good_file_accepted(void)
{
	char *dir = util_mkdtemp();
	char *err = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_EQUAL(run_plugin(dir, "golden.proto", NULL, &err), 0);
	CU_ASSERT_EQUAL(count_files(dir), 2);
	free(err);
	util_rmtree(dir);
	free(dir);
}

static void test_not_a_request(void)
{
	char *dir = util_mkdtemp();
	char in_path[4096], *err = NULL;
	FILE *f;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	snprintf(in_path, sizeof(in_path), "%s/garbage", dir);
	f = fopen(in_path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("\xff\xff\xff\xff this is not protobuf", f);
	fclose(f);
	char *argv[] = { (char *)plugin, NULL };
	CU_ASSERT_EQUAL(util_run(argv, in_path, dir, &err), 1);
	CU_ASSERT_TRUE(err && strstr(err, "not a CodeGeneratorRequest"));
	free(err);
	err = NULL;
	char *argv2[] = { (char *)plugin, (char *)"foo.proto", NULL };
	CU_ASSERT_EQUAL(util_run(argv2, NULL, dir, &err), 2);
	CU_ASSERT_TRUE(err && strstr(err, "is a protoc plugin"));
	free(err);
	util_rmtree(dir);
	free(dir);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("codegen_errors", NULL, NULL);
	CU_add_test(s, "extensions are refused", test_extensions_refused);
	CU_add_test(s, "groups are refused", test_groups_refused);
	CU_add_test(s, "protobuf-c file options are refused", test_protobuf_c_options_refused);
	CU_add_test(s, "unknown parameter is refused", test_unknown_parameter_refused);
	CU_add_test(s, "a good file is accepted", test_good_file_accepted);
	CU_add_test(s, "stdin that is not a request", test_not_a_request);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s PROTOC PLUGIN PROTO_DIR PROTO_INCLUDE_DIR\n", argv[0]);
		return 2;
	}
	protoc = argv[1];
	plugin = argv[2];
	proto_dir = argv[3];
	proto_include = argv[4];
	return h_run("test_codegen_errors", add);
}
