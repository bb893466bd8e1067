/* timing.c -- SysTick setup and the tick -> QEMU instruction conversion (see timing.h). */
#include "timing.h"

#include "board.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CSR_ENABLE 0x1u
#define CSR_CLKSOURCE_CPU 0x4u /* processor clock; no TICKINT: wraps are handled modulo 2^24 */

void hm_timer_init(void)
{
    SYST_RVR = HM_SYSTICK_MASK;
    SYST_CVR = 0; /* any write clears the counter; it reloads on the next tick */
    SYST_CSR = CSR_ENABLE | CSR_CLKSOURCE_CPU;
}

uint32_t hm_ticks_to_instructions(uint64_t ticks)
{
    uint64_t instructions = (ticks * 1000000000ull + HM_SYSCLK_HZ / 2u) / HM_SYSCLK_HZ;
    return instructions > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)instructions;
}
