/*
 * hm_timing.h -- per-inference timing for the TFLM firmware template.
 *
 * HM_TIMING_DWT (targets whose descriptor says has_dwt): the DWT cycle counter (CYCCNT),
 * 32-bit, counts core clock cycles; reported as device_time unit CYCLES and converted to us
 * on the host with INFO clock_hz. Otherwise SysTick (24-bit down-counter, core clock),
 * also in cycles; an inference longer than 2^24 cycles wraps (SysTick only).
 * Registers: Armv7-M / Armv8-M Architecture Reference Manual (DEMCR, DWT_CTRL, DWT_CYCCNT,
 * SYST_CSR, SYST_RVR, SYST_CVR).
 */
#ifndef HM_TIMING_H
#define HM_TIMING_H

#include <stdint.h>

#define HM_REG(address) (*(volatile uint32_t *)(address))

#ifdef HM_TIMING_DWT
static inline void hm_cycles_init(void)
{
    HM_REG(0xE000EDFCu) |= (1u << 24);   /* DEMCR.TRCENA: enable DWT */
    HM_REG(0xE0001004u) = 0;             /* DWT_CYCCNT */
    HM_REG(0xE0001000u) |= 1u;           /* DWT_CTRL.CYCCNTENA */
}
static inline uint32_t hm_cycles_now(void) { return HM_REG(0xE0001004u); }
static inline uint32_t hm_cycles_elapsed(uint32_t start, uint32_t end) { return end - start; }
#else
static inline void hm_cycles_init(void)
{
    HM_REG(0xE000E014u) = 0x00FFFFFFu;   /* SYST_RVR: full 24-bit range */
    HM_REG(0xE000E018u) = 0;             /* SYST_CVR */
    HM_REG(0xE000E010u) = 5u;            /* SYST_CSR: enable, core clock, no interrupt */
}
static inline uint32_t hm_cycles_now(void) { return HM_REG(0xE000E018u); }
static inline uint32_t hm_cycles_elapsed(uint32_t start, uint32_t end) { return (start - end) & 0x00FFFFFFu; }
#endif

#endif /* HM_TIMING_H */
