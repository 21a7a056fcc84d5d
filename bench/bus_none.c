/*
 * bus_none.c - stands in for bus_cases.c when the tree is built without the
 * bus library, so that the floors and the alternatives can still be run.
 */
#include "bench.h"

const char *bench_bus_unavailable(void)
{
	return "not built (no bus library)";
}

int bench_bus_run(int stage)
{
	(void)stage;
	return 0;
}

int bench_bus_begin(void)
{
	return 0;
}

void bench_bus_end(void)
{
}
