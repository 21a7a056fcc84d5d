/*
 * iceoryx_none.c - stands in for iceoryx.c when the tree is built without
 * iceoryx's C binding: the iceoryx rows are then not measured, and the
 * bench says why.
 */
#include "bench.h"

const char *bench_iox_unavailable(void)
{
	return "not measured: shmbus-bench was built without iceoryx's C binding (Debian: "
	       "iceoryx libiceoryx-binding-c-dev; bench/run installs them)";
}

int bench_iox_run(int stage)
{
	(void)stage;
	return 0;
}

int bench_iox_begin(void)
{
	return -1;
}

void bench_iox_end(void)
{
}
