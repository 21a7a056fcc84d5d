/*
 * test_typed_pipeline - the sensor-pipeline demo (examples/pipeline) runs
 * end to end for two seconds on a bus of its own: every process exits
 * cleanly, the monitor receives frames, IMU samples and the processor's
 * results, and the processor read frames in place.
 *
 * usage: test_typed_pipeline CAMERA IMU PROCESSOR MONITOR
 */
#include "harness.h"
#include "typed_util.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

static const char *progs[4];
static const char *const names[4] = { "camera", "imu", "processor", "monitor" };

static pid_t spawn(const char *prog, const char *out_path)
{
	posix_spawn_file_actions_t fa;
	char *argv[] = { (char *)prog, (char *)"--bus", (char *)h_bus_name("pipeline"),
			 (char *)"--duration", (char *)"2", NULL };
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -1;
}

/* The number printed after `key` in text, or -1. */
static long number_after(const char *text, const char *key)
{
	const char *p = text ? strstr(text, key) : NULL;

	return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static void test_pipeline_runs(void)
{
	char *dir = util_mkdtemp();
	char out[4][4096];
	char *text[4];
	pid_t pids[4];

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	/* Subscribers first, so they see the first messages. */
	for (int i = 3; i >= 0; i--) {
		snprintf(out[i], sizeof(out[i]), "%s/%s.out", dir, names[i]);
		pids[i] = spawn(progs[i], out[i]);
		CU_ASSERT_TRUE_FATAL(pids[i] > 0);
	}
	for (int i = 0; i < 4; i++) {
		int status = -1;

		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			printf("\npipeline_%s ended with status 0x%x\n", names[i], status);
		CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		text[i] = util_read_file(out[i], NULL);
	}
	CU_ASSERT_TRUE(number_after(text[0], "published ") > 0);
	CU_ASSERT_TRUE(number_after(text[1], "published ") > 0);
	CU_ASSERT_TRUE(number_after(text[2], "pipeline_processor: ") > 0);
	CU_ASSERT_TRUE(number_after(text[3], "received ") > 0);
	CU_ASSERT_TRUE(number_after(text[3], "frames, ") > 0);
	CU_ASSERT_TRUE(number_after(text[3], "IMU samples, ") > 0);
	CU_ASSERT_TRUE(text[3] && strstr(text[3], "camera/image"));
	for (int i = 0; i < 4; i++)
		free(text[i]);
	util_rmtree(dir);
	free(dir);
}

static void add(void)
{
	CU_pSuite s = h_add_bus_suite("typed_pipeline", "pipeline");

	CU_add_test(s, "the sensor-pipeline demo runs end to end", test_pipeline_runs);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s CAMERA IMU PROCESSOR MONITOR\n", argv[0]);
		return 2;
	}
	for (int i = 0; i < 4; i++)
		progs[i] = argv[i + 1];
	return h_run("test_typed_pipeline", add);
}
