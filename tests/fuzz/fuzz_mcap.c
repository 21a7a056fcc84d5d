/*
 * fuzz_mcap.c - libFuzzer target: lib/mcap's reader, fed arbitrary bytes as
 * a file (a recording from anywhere: `shmbus play`, `mcap info`, `cat`,
 * `recover` read such files). Each input is opened three times: by its
 * summary, by a forward scan with the data CRC checked, and salvaging (as
 * `mcap recover` does); everything the reader offers is walked: channels,
 * schemas, metadata, every message twice (rewind), each byte of each
 * payload read. A reader that accepts a file must hand out only what lies
 * inside it; a salvaging one never fails after opening, hands out as many
 * messages as it counted, and names damaged ranges in order inside the
 * file.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mcap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

/* Reads every byte of what the reader hands out (ASan sees any byte
 * outside its allocation or the mapping). */
static uint8_t touch(const void *p, size_t n)
{
	const volatile uint8_t *b = p;
	uint8_t x = 0;
	for (size_t i = 0; i < n; i++)
		x ^= b[i];
	return x;
}

static void walk(unsigned flags)
{
	char err[256];
	mcap_reader *r;
	if (mcap_reader_open(path, flags, &r, err, sizeof(err)) != 0) {
		if (!err[0])
			__builtin_trap(); /* a refusal always says why */
		return;
	}
	const struct mcap_info *in = mcap_reader_info(r);
	uint8_t x = 0;
	for (uint32_t i = 0; i < in->metadata_count; i++) {
		const char *name;
		const struct mcap_kv *kv;
		size_t n;
		if (mcap_reader_metadata(r, i, &name, &kv, &n) == 0) {
			x ^= touch(name, strlen(name));
			for (size_t k = 0; k < n; k++)
				x ^= touch(kv[k].key, strlen(kv[k].key)) ^
				     touch(kv[k].value, strlen(kv[k].value));
		}
	}
	for (int pass = 0; pass < 2; pass++) {
		struct mcap_message m;
		int rc;
		long n = 0;
		while (n < 100000 && (rc = mcap_reader_next(r, &m)) == 1) {
			x ^= touch(m.data, m.size);
			const struct mcap_channel *ch = mcap_reader_channel(r, m.channel_id);
			if (!ch)
				__builtin_trap(); /* a message of a channel never defined */
			x ^= touch(ch->topic, strlen(ch->topic));
			const struct mcap_schema *s = mcap_reader_schema(r, ch->schema_id);
			if (s)
				x ^= touch(s->data, s->size) ^ touch(s->name, strlen(s->name));
			n++;
		}
		if (rc < 0 && !mcap_reader_error(r)[0])
			__builtin_trap();
		if ((flags & MCAP_READ_SALVAGE) &&
		    (rc < 0 || (n < 100000 && (uint64_t)n != in->message_count)))
			__builtin_trap(); /* the walk must go where the scan went */
		mcap_reader_rewind(r);
	}
	uint64_t from, to, end = 0;
	const char *why;
	for (size_t i = 0; mcap_reader_damage(r, i, &from, &to, &why) == 0; i++) {
		if (from < end || to <= from || to > in->file_size || !why[0])
			__builtin_trap();
		end = to;
	}
	const struct mcap_channel *chs;
	const struct mcap_schema *ss;
	size_t nc = mcap_reader_channels(r, &chs), ns = mcap_reader_schemas(r, &ss);
	for (size_t i = 0; i < nc; i++)
		x ^= touch(chs[i].topic, strlen(chs[i].topic)) ^
		     touch(chs[i].message_encoding, strlen(chs[i].message_encoding));
	for (size_t i = 0; i < ns; i++)
		x ^= touch(ss[i].data, ss[i].size) ^ touch(ss[i].encoding, strlen(ss[i].encoding));
	(void)x;
	mcap_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The reader maps a path: the input goes into a memory file that is
	 * reopened by its /proc name, so nothing touches the disk. */
	if (fd < 0) {
		fd = memfd_create("fuzz_mcap", MFD_CLOEXEC);
		if (fd < 0)
			__builtin_trap();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		__builtin_trap();
	walk(0);
	walk(MCAP_READ_SCAN | MCAP_READ_VERIFY_DATA_CRC);
	walk(MCAP_READ_SALVAGE);
	return 0;
}
