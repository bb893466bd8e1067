/* uart_cmsdk.h -- polled driver for the Arm CMSDK APB UART (Cortex-M System Design Kit TRM, "UART"). */
#ifndef HM_UART_CMSDK_H
#define HM_UART_CMSDK_H

#include <stddef.h>
#include <stdint.h>

void hm_uart_init(uint32_t base, uint32_t pclk_hz, uint32_t baud);
/* Blocks while the one-byte transmit holding register is full. */
void hm_uart_write(void *base_as_context, const uint8_t *data, size_t length);
/* The next received byte, or -1 when none is waiting. */
int hm_uart_read_byte(uint32_t base);

/* Sleep (WFI) until the UART may have received a byte. Interrupts stay masked (PRIMASK):
 * the UART's RX interrupt is only a wake-up event, no handler runs. hm_uart_init enables
 * it and every NVIC line, so no board-specific IRQ number is needed. */
void hm_uart_wait_for_rx(uint32_t base);

#endif
