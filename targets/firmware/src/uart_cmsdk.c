/*
 * uart_cmsdk.c -- polled CMSDK APB UART: no interrupt handlers, no buffers beyond the UART's own.
 *
 * Waiting for input sleeps in WFI instead of spinning: QEMU's UART holds one received byte
 * and hands over the next only when its main loop runs, which a spinning guest starves
 * (about 3 KB/s measured here; sleeping lets bytes through as fast as the guest takes them).
 */
#include "uart_cmsdk.h"

/* Register offsets and bits (CMSDK TRM): DATA, STATE (TX full, RX full), CTRL (TX/RX enable), BAUDDIV. */
#define UART_DATA 0x00u
#define UART_STATE 0x04u
#define UART_CTRL 0x08u
#define UART_BAUDDIV 0x10u
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define CTRL_TX_ENABLE 0x1u
#define CTRL_RX_ENABLE 0x2u
#define CTRL_RX_INTERRUPT 0x8u
#define UART_INTCLEAR 0x0Cu /* write 1s: bit 1 clears the RX interrupt */
#define INT_RX 0x2u
#define NVIC_ISER0 0xE000E100u /* 16 set-enable words (unimplemented lines ignore writes) */
#define NVIC_ICPR0 0xE000E280u /* 16 clear-pending words */
#define NVIC_WORDS 16u

static volatile uint32_t *reg(uint32_t base, uint32_t offset)
{
    return (volatile uint32_t *)(uintptr_t)(base + offset);
}

void hm_uart_init(uint32_t base, uint32_t pclk_hz, uint32_t baud)
{
    uint32_t word;
    *reg(base, UART_BAUDDIV) = pclk_hz / baud;
    *reg(base, UART_CTRL) = CTRL_TX_ENABLE | CTRL_RX_ENABLE | CTRL_RX_INTERRUPT;
    /* PRIMASK keeps every handler from running; an enabled, pending line still ends a WFI. */
    __asm volatile("cpsid i" ::: "memory");
    for (word = 0; word < NVIC_WORDS; ++word) {
        *reg(NVIC_ISER0, 4u * word) = 0xFFFFFFFFu;
    }
}

void hm_uart_write(void *base_as_context, const uint8_t *data, size_t length)
{
    uint32_t base = (uint32_t)(uintptr_t)base_as_context;
    size_t i;
    for (i = 0; i < length; ++i) {
        while (*reg(base, UART_STATE) & STATE_TX_FULL) {
        }
        *reg(base, UART_DATA) = data[i];
    }
}

int hm_uart_read_byte(uint32_t base)
{
    if (*reg(base, UART_STATE) & STATE_RX_FULL) {
        return (int)(*reg(base, UART_DATA) & 0xFFu);
    }
    return -1;
}

void hm_uart_wait_for_rx(uint32_t base)
{
    uint32_t word;
    if (*reg(base, UART_STATE) & STATE_RX_FULL) {
        return;
    }
    /* A byte that lands between the check and WFI leaves its interrupt pending: WFI returns at once. */
    __asm volatile("dsb\n\twfi" ::: "memory");
    *reg(base, UART_INTCLEAR) = INT_RX;
    for (word = 0; word < NVIC_WORDS; ++word) {
        *reg(NVIC_ICPR0, 4u * word) = 0xFFFFFFFFu;
    }
}
