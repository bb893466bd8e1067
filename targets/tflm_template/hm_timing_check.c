/* hm_timing_check.c -- compiles hm_timing.h and hm_board_port.h alone (make protocol-check). */
#include "hm_board_port.h"
#include "hm_timing.h"

uint32_t hm_timing_check(void)
{
    uint32_t start;
    hm_cycles_init();
    start = hm_cycles_now();
    return hm_cycles_elapsed(start, hm_cycles_now());
}
