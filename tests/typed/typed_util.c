/*
 * typed_util.c - process and file helpers for the typed-layer and codegen
 * tests (see typed_util.h).
 */
#include "typed_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

char *util_read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	buf = malloc((size_t)n + 1);
	if (!buf)
		goto out;
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = '\0';
	if (size)
		*size = (size_t)n;
out:
	fclose(f);
	return buf;
}

int util_run(char *const argv[], const char *stdin_path, const char *dir, char **err_text)
{
	posix_spawn_file_actions_t fa;
	char out_path[4096], err_path[4096];
	int status, rc;
	pid_t pid;

	if (err_text)
		*err_text = NULL;
	snprintf(out_path, sizeof(out_path), "%s/.stdout", dir);
	snprintf(err_path, sizeof(err_path), "%s/.stderr", dir);
	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	posix_spawn_file_actions_addopen(&fa, 0, stdin_path ? stdin_path : "/dev/null",
					 O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (err_text)
		*err_text = util_read_file(err_path, NULL);
	unlink(out_path);
	unlink(err_path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

char *util_mkdtemp(void)
{
	const char *tmp = getenv("TMPDIR");
	char *path = NULL;

	if (asprintf(&path, "%s/shmbus-typed-test-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

void util_rmtree(const char *path)
{
	if (path)
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int util_diff(const char *a, const char *b, char *msg, size_t msg_size)
{
	int line = 1;

	while (*a || *b) {
		const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
		size_t na = ea ? (size_t)(ea - a) : strlen(a);
		size_t nb = eb ? (size_t)(eb - b) : strlen(b);

		if (na != nb || memcmp(a, b, na) != 0 || !ea != !eb) {
			snprintf(msg, msg_size, "line %d:\n  expected: %.*s\n  got:      %.*s",
				 line, (int)na, a, (int)nb, b);
			return 1;
		}
		a += na + (ea ? 1 : 0);
		b += nb + (eb ? 1 : 0);
		line++;
	}
	return 0;
}
