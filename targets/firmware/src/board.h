/*
 * board.h -- the three QEMU boards the firmware runs on (select one with -DHM_BOARD_<NAME>).
 *
 * Addresses were read from QEMU 7.2's own memory tree (`info mtree` of each machine) and its
 * board sources (hw/arm/mps2.c, hw/arm/mps2-tz.c), which follow Arm's application notes
 * AN385, AN505 and AN547. The TrustZone boards (AN505, AN547) start in the Secure state,
 * so the firmware uses the Secure aliases (address bit 28 set) of memory and peripherals.
 *
 * HM_SYSCLK_HZ is the board's main clock, which QEMU also feeds to SysTick (CLKSOURCE=1).
 * Under `-icount shift=0` QEMU advances its virtual clock by exactly 1 ns per guest
 * instruction, so one SysTick tick is 1e9 / HM_SYSCLK_HZ instructions.
 */
#ifndef HM_BOARD_H
#define HM_BOARD_H

#if defined(HM_BOARD_MPS2_AN385)
#define HM_BOARD_NAME "mps2-an385"
#define HM_CPU_NAME "Cortex-M3"
#define HM_UART0_BASE 0x40004000u /* CMSDK APB UART0 */
#define HM_SYSCLK_HZ 25000000u
#elif defined(HM_BOARD_MPS2_AN505)
#define HM_BOARD_NAME "mps2-an505"
#define HM_CPU_NAME "Cortex-M33"
#define HM_UART0_BASE 0x50200000u /* CMSDK APB UART0, Secure alias of 0x40200000 */
#define HM_SYSCLK_HZ 20000000u
#elif defined(HM_BOARD_MPS3_AN547)
#define HM_BOARD_NAME "mps3-an547"
#define HM_CPU_NAME "Cortex-M55"
#define HM_UART0_BASE 0x59303000u /* CMSDK APB UART0, Secure alias of 0x49303000 */
#define HM_SYSCLK_HZ 32000000u
#else
#error "select a board: -DHM_BOARD_MPS2_AN385, -DHM_BOARD_MPS2_AN505 or -DHM_BOARD_MPS3_AN547"
#endif

#define HM_UART_BAUD 115200u /* QEMU ignores the rate, but a BAUDDIV below 16 stops the UART */

#endif /* HM_BOARD_H */
