/*
 * startup.c -- vector table and reset handler for the QEMU Cortex-M boards.
 *
 * The table sits at the start of the CODE region (linker scripts in ../boards), which is
 * where each board's reset vector base points (VTOR / the Secure VTOR on v8-M). Reset
 * copies .data from its load address, zeroes .bss and calls main(). Faults print a short
 * marker on UART0 (the host sees line noise and times out) and stop.
 */
#include <stdint.h>

#include "board.h"
#include "uart_cmsdk.h"

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __stack_top__;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void Idle_Handler(void);

typedef void (*hm_vector_t)(void);

__attribute__((section(".vectors"), used)) const hm_vector_t hm_vector_table[16] = {
    (hm_vector_t)(uintptr_t)&__stack_top__, /* initial main stack pointer */
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    Fault_Handler, /* SecureFault (v8-M) */
    0, 0, 0,
    Idle_Handler,  /* SVCall */
    Idle_Handler,  /* DebugMonitor */
    0,
    Idle_Handler,  /* PendSV */
    Idle_Handler,  /* SysTick (its interrupt is never enabled) */
};

void Reset_Handler(void)
{
    uint32_t *src = &__data_load__;
    uint32_t *dst = &__data_start__;
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0;
    }
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* Full access to CP10/CP11 (FPU, and MVE on the M55) before any such instruction runs. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    main();
    for (;;) {
    }
}

void Fault_Handler(void)
{
    static const uint8_t marker[] = "\r\nhm-fault\r\n";
    hm_uart_write((void *)(uintptr_t)HM_UART0_BASE, marker, sizeof(marker) - 1);
    for (;;) {
    }
}

void Idle_Handler(void)
{
}
