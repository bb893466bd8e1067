/*
 * timing.h -- SysTick as the firmware's counter (QEMU implements no DWT cycle counter).
 *
 * SysTick is a 24-bit down-counter clocked at HM_SYSCLK_HZ. Under QEMU `-icount shift=0`
 * each tick stands for 1e9 / HM_SYSCLK_HZ guest instructions, so the firmware reports
 * **QEMU instruction counts** (not cycles, not time), with that resolution. One timed
 * interval must stay below 2^24 ticks (about 671 M instructions on mps2-an385).
 */
#ifndef HM_TIMING_H
#define HM_TIMING_H

#include <stdint.h>

#define HM_SYSTICK_MASK 0x00FFFFFFu

void hm_timer_init(void);

/* Restart the count (a write to SYST_CVR): the tick phase then follows this instruction, not
 * the moment a host byte happened to arrive, so what is timed after it is deterministic. */
static inline void hm_timer_restart(void)
{
    *(volatile uint32_t *)0xE000E018u = 0; /* SYST_CVR */
}

static inline uint32_t hm_timer_now(void)
{
    return *(volatile uint32_t *)0xE000E018u; /* SYST_CVR */
}

/* Ticks from start to end of a down-counter, modulo 2^24. */
static inline uint32_t hm_timer_elapsed(uint32_t start, uint32_t end)
{
    return (start - end) & HM_SYSTICK_MASK;
}

/* QEMU instructions in a number of ticks (icount shift 0: 1 instruction per ns). */
uint32_t hm_ticks_to_instructions(uint64_t ticks);

#endif
