/*
 * test_codegen_golden - the plugin's output for tests/typed/proto/golden.proto
 * must equal the checked-in tests/golden/golden.shmbus.{h,c}: any change in
 * the generated code shows up here and in review.
 *
 * usage: test_codegen_golden PROTOC PLUGIN PROTO_DIR GOLDEN_DIR
 * After an intended change, regenerate the expected files with
 * SHMBUS_UPDATE_GOLDEN=1 (see codegen/README.md) and review the diff.
 */
#include "harness.h"
#include "typed_util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *protoc, *plugin, *proto_dir, *golden_dir;

static void compare(const char *out_dir, const char *name)
{
	char got_path[4096], want_path[4096], msg[2048];
	char *got, *want;

	snprintf(got_path, sizeof(got_path), "%s/%s", out_dir, name);
	snprintf(want_path, sizeof(want_path), "%s/%s", golden_dir, name);
	got = util_read_file(got_path, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	if (getenv("SHMBUS_UPDATE_GOLDEN")) {
		FILE *f = fopen(want_path, "wb");

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(fwrite(got, 1, strlen(got), f), strlen(got));
		CU_ASSERT_EQUAL(fclose(f), 0);
		printf("\nupdated %s\n", want_path);
		free(got);
		return;
	}
	want = util_read_file(want_path, NULL);
	CU_ASSERT_PTR_NOT_NULL(want);
	if (want) {
		int differs = util_diff(want, got, msg, sizeof(msg));

		if (differs)
			printf("\n%s differs from the golden file, %s\n", name, msg);
		CU_ASSERT_EQUAL(differs, 0);
	}
	free(got);
	free(want);
}

static void test_golden(void)
{
	char *dir = util_mkdtemp();
	char plugin_arg[4096], proto_path[4096], c_out[4096], shmbus_out[4096];
	char *err = NULL;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	snprintf(plugin_arg, sizeof(plugin_arg), "--plugin=protoc-gen-shmbus=%s", plugin);
	snprintf(proto_path, sizeof(proto_path), "--proto_path=%s", proto_dir);
	snprintf(c_out, sizeof(c_out), "--c_out=%s", dir);
	snprintf(shmbus_out, sizeof(shmbus_out), "--shmbus_out=%s", dir);
	char *argv[] = { (char *)protoc, plugin_arg, proto_path, c_out, shmbus_out,
			 (char *)"golden.proto", NULL };

	rc = util_run(argv, NULL, dir, &err);
	if (rc != 0)
		printf("\nprotoc failed (%d): %s\n", rc, err ? err : "");
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	compare(dir, "golden.shmbus.h");
	compare(dir, "golden.shmbus.c");
	free(err);
	util_rmtree(dir);
	free(dir);
}

static void add(void)
{
	CU_pSuite s = CU_add_suite("codegen_golden", NULL, NULL);
	CU_add_test(s, "generated code equals tests/golden", test_golden);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s PROTOC PLUGIN PROTO_DIR GOLDEN_DIR\n", argv[0]);
		return 2;
	}
	protoc = argv[1];
	plugin = argv[2];
	proto_dir = argv[3];
	golden_dir = argv[4];
	return h_run("test_codegen_golden", add);
}
